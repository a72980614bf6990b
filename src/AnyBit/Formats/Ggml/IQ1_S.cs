using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq1_s: 256 weights in 8 blocks of 32, each 4 groups of 8 on the grid (<see cref="IQ1Grid"/>):
/// w = d·(2s + 1)·(g + δ), g ∈ {−1, 0, 1}, δ = ±IQ1S_DELTA per block; 1.5625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ1_S
{
    public Half D;
    public Bytes32 Qs;  // grid index of group k of block ib, low 8 bits: byte 4ib + k
    public UInt16s8 Qh; // block ib: bits 3k..3k+2 the high 3 bits of group k's index, 12-14 the scale s, 15 δ < 0
}

/// <summary>
/// IQ1_S as quantize_iq1_s writes it, which needs an importance matrix (llama.cpp refuses the type without one).
/// Its integer form (<see cref="Kernel"/>): codes 32 + 8g ± 1 (offset −32), a sub-scale 2s + 1 per 16 and d/8 as the
/// block scale — exact, since 8·(g + δ) is an integer and d/8 loses nothing in float32. That is Q6_K's layout with a
/// float32 block scale (d/8 is not always an f16), which every signed-sub-scale tile reads (BlockScale).
/// </summary>
internal sealed class IQ1_S : GgmlBlockFormat<BlockIQ1_S, IQ1_S.Kernel>
{
    public override TensorType Type => TensorType.IQ1_S;
    public override uint? FileType => 24; // LLAMA_FTYPE_MOSTLY_IQ1_S
    public override int BlockSize => KQuantFits.QK_K;

    public override bool UsesImportance => true;
    public override bool RequiresImportance => true; // ggml_quantize_requires_imatrix(GGML_TYPE_IQ1_S)

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => throw NeedsImportance();

    /// <summary>The whole-tensor form fails once, before any row (not once per row in parallel).</summary>
    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst) => throw NeedsImportance();

    private static AnyBitException NeedsImportance() =>
        new("IQ1_S needs an importance matrix (--imatrix): llama.cpp refuses to quantize to this very low-bit type without one, as the result would be garbage");

    private const int BlockSizeS = 32; // IQ1S_BLOCK_SIZE
    private const float GroupMaxEps = 1e-12f; // GROUP_MAX_EPS_IQ1_S

    /// <summary>
    /// quantize_row_iq1_s_impl: per block of 32 the exact weighted least-squares split of the sorted weights into
    /// −1, 0, 1 with shift +δ or −δ, the groups of 8 rounded to the grid (or their best listed neighbour), then the
    /// block scales to 3 bits of one f16 super-scale (with ggml's two fudge factors).
    /// </summary>
    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw NeedsImportance();
        if (importance.Length < x.Length) throw new ArgumentException($"importance has {importance.Length} values for a row of {x.Length}", nameof(importance));
        var lattice = IQ2Lattice.For(TensorType.IQ1_S);
        var kmap = lattice.Map;
        const int blockSize = BlockSizeS, QK_K = KQuantFits.QK_K;
        ReadOnlySpan<float> x_p = [-1 + IQ1Grid.IQ1S_DELTA, IQ1Grid.IQ1S_DELTA, 1 + IQ1Grid.IQ1S_DELTA];
        ReadOnlySpan<float> x_m = [-1 - IQ1Grid.IQ1S_DELTA, -IQ1Grid.IQ1S_DELTA, 1 - IQ1Grid.IQ1S_DELTA];
        Span<float> scales = stackalloc float[QK_K / blockSize], weight = stackalloc float[blockSize];
        Span<float> sumx = stackalloc float[blockSize + 1], sumw = stackalloc float[blockSize + 1];
        Span<int> idx = stackalloc int[blockSize];
        Span<sbyte> L = stackalloc sbyte[blockSize];
        Span<ushort> index = stackalloc ushort[blockSize / 8];
        // ggml leaves shifts[ib] as it was for a block too small to fit (its scale is 0) and reads it for the
        // block's sign bit: the previous super-block's, or what the stack held at the first. Here that is 0.
        Span<sbyte> shifts = stackalloc sbyte[QK_K / blockSize];
        shifts.Clear();
        var blocks = MemoryMarshal.Cast<byte, BlockIQ1_S>(y);
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            Span<byte> qs = block.Qs;
            Span<ushort> qh = block.Qh;
            block.D = (Half)0f;
            qs.Clear();
            qh.Clear();
            float maxScale = 0;
            var xbl = x.Slice(QK_K * ibl, QK_K);
            float sigma2 = IQ1Search.Sigma2(xbl);
            for (int ib = 0; ib < QK_K / blockSize; ++ib)
            {
                var xb = xbl.Slice(blockSize * ib, blockSize);
                IQ1Search.Weights(xb, importance.Slice(QK_K * ibl + blockSize * ib, blockSize), sigma2, weight);
                float max = IQ1Search.MaxAbs(xb);
                if (max < GroupMaxEps)
                {
                    scales[ib] = 0;
                    continue;
                }
                // The exact minimum of the weighted squared error over the three levels: sorted, the weights split
                // into −1, 0, 1 at two boundaries i1 ≤ i2, whose sums come from the prefix sums Si and Wi.
                IQ1Search.SortAscending(xb, idx);
                sumx[0] = sumw[0] = 0;
                for (int j = 0; j < blockSize; ++j)
                {
                    int i = idx[j];
                    sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                    sumw[j + 1] = sumw[j] + weight[i];
                }
                float bestScore = -IQ1Search.FLT_MIN, scale = max;
                int besti1 = -1, besti2 = -1, bestShift = 0;
                for (int i1 = 0; i1 <= blockSize; ++i1)
                {
                    for (int i2 = i1; i2 <= blockSize; ++i2)
                    {
                        float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] + (sumx[blockSize] - sumx[i2]) * x_p[2];
                        float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] + (sumw[blockSize] - sumw[i2]) * x_p[2] * x_p[2];
                        if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2)
                        {
                            scale = sumqx / sumq2; bestScore = scale * sumqx;
                            besti1 = i1; besti2 = i2; bestShift = 1;
                        }
                        sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] + (sumx[blockSize] - sumx[i2]) * x_m[2];
                        sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] + (sumw[blockSize] - sumw[i2]) * x_m[2] * x_m[2];
                        if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2)
                        {
                            scale = sumqx / sumq2; bestScore = scale * sumqx;
                            besti1 = i1; besti2 = i2; bestShift = -1;
                        }
                    }
                }
                if (besti1 < 0) throw NoFit();
                for (int j = 0; j < besti1; ++j) L[idx[j]] = 0;
                for (int j = besti1; j < besti2; ++j) L[idx[j]] = 1;
                for (int j = besti2; j < blockSize; ++j) L[idx[j]] = 2;
                if (scale < 0)
                {
                    for (int j = 0; j < blockSize; ++j) L[j] = (sbyte)(2 - L[j]);
                    scale = -scale; bestShift = -bestShift;
                }
                bool allOnGrid = true;
                var xx = bestShift == 1 ? x_p : x_m;
                for (int k = 0; k < blockSize / 8; ++k)
                {
                    int u = 0;
                    for (int j = 0; j < 8; ++j) u |= L[8 * k + j] << 2 * j;
                    int gridIndex = kmap[u];
                    if (gridIndex < 0)
                    {
                        allOnGrid = false;
                        gridIndex = IQ1Search.FindBestNeighbour(lattice, lattice.NeighboursOf(u), xb.Slice(8 * k, 8), weight.Slice(8 * k, 8), scale, xx, L.Slice(8 * k, 8));
                    }
                    index[k] = (ushort)gridIndex;
                }
                if (!allOnGrid)
                {
                    float sumqx = 0, sumq2 = 0;
                    for (int k = 0; k < blockSize / 8; ++k)
                    {
                        var pg = lattice.Point(index[k]);
                        for (int j = 0; j < 8; ++j)
                        {
                            float w = weight[8 * k + j];
                            float q = xx[(pg[j] - 1) / 2];
                            sumqx += w * q * xb[8 * k + j];
                            sumq2 += w * q * q;
                        }
                    }
                    if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
                }
                int h = 0;
                for (int k = 0; k < blockSize / 8; ++k)
                {
                    qs[(blockSize / 8) * ib + k] = (byte)(index[k] & 255);
                    h |= (index[k] >> 8) << 3 * k;
                }
                qh[ib] = (ushort)h;
                scales[ib] = scale;
                shifts[ib] = (sbyte)bestShift;
                maxScale = maxScale > scale ? maxScale : scale;
            }

            if (maxScale == 0) continue;
            float d = maxScale / 15;
            block.D = (Half)(d * 1.125f); // ggml: "1.125f is another fudge factor. Don't ask me why it is needed."
            float id = 1 / d;
            for (int ib = 0; ib < QK_K / blockSize; ++ib)
            {
                int l = GgmlHelpers.NearestInt(0.5f * (id * scales[ib] - 1));
                l = Math.Max(0, Math.Min(7, l));
                if (shifts[ib] == -1) l |= 8;
                qh[ib] |= (ushort)(l << 12);
            }
        }
    }

    /// <summary>ggml asserts here: no split had a positive weighted Σq² (every importance of the block is 0, or NaN input).</summary>
    private static AnyBitException NoFit() =>
        new("IQ1_S: a block of 32 columns has no usable importance (all 0 or not finite); llama.cpp aborts on such a tensor");

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ1_S>(bytes);
        o.D = (float)b.D / 8;
        ReadOnlySpan<byte> qs = b.Qs;
        ReadOnlySpan<ushort> qh = b.Qh;
        var grid = IQ1Grid.Points;
        for (int ib = 0; ib < 8; ib++)
        {
            int h = qh[ib];
            o.Scales16[2 * ib] = o.Scales16[2 * ib + 1] = 2 * ((h >> 12) & 7) + 1;
            int code = 32 + ((h & 0x8000) != 0 ? -1 : 1);
            for (int l = 0; l < 4; l++)
            {
                ulong point = grid[qs[4 * ib + l] | (((h >> (3 * l)) & 7) << 8)];
                var c = o.Codes.Slice(32 * ib + 8 * l, 8);
                for (int j = 0; j < 8; j++) c[j] = (byte)(code + 8 * (sbyte)(point >> (8 * j)));
            }
        }
    }

    /// <summary>Q6_K's layout (6-bit codes, offset −32, a signed sub-scale per 16) with a float32 d.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
    }
}
