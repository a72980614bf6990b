using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq1_m: 256 weights in 16 blocks of 16, each 2 groups of 8 on the grid (<see cref="IQ1Grid"/>):
/// w = d·(2s + 1)·(g + δ), g ∈ {−1, 0, 1}, a 3-bit s per 16 and δ = ±IQ1M_DELTA per group of 8; 1.75 bits per weight.
/// It has no d field: the f16 d (iq1m_scale_t) is spread over the top nibbles of the four uint16 of scales.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ1_M
{
    public Bytes32 Qs;     // grid index of group k of block ib (16 weights), low 8 bits: byte 2ib + k
    public Bytes16 Qh;     // block ib: bits 0-2 / 4-6 the high 3 bits of group 0's / 1's index, bit 3 / 7 its δ < 0
    public Bytes8 Scales;  // as 4 uint16: block ib's s at bits 3·(ib % 4) of word ib/4; bits 12-15 of word w: d's nibble w
}

/// <summary>
/// IQ1_M as quantize_iq1_m writes it: with an importance matrix, or (as ggml does, where llama-quantize refuses all
/// but token_embd.weight and output.weight) with x² as the weights. Its integer form is IQ1_S's (<see cref="IQ1_S"/>,
/// <see cref="Kernel"/>), with a sub-scale of its own per 16.
/// </summary>
internal sealed class IQ1_M : GgmlBlockFormat<BlockIQ1_M, IQ1_M.Kernel>
{
    public override TensorType Type => TensorType.IQ1_M;
    public override uint? FileType => 31; // LLAMA_FTYPE_MOSTLY_IQ1_M
    public override int BlockSize => KQuantFits.QK_K;

    public override bool UsesImportance => true;

    // ggml_quantize_requires_imatrix has IQ1_M commented out and quantize_iq1_m runs without one; llama-quantize's own
    // check refuses it for every tensor but token_embd.weight and output.weight, a choice by tensor for the caller.
    public override bool RequiresImportance => false;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => Fit(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty && importance.Length < x.Length) throw new ArgumentException($"importance has {importance.Length} values for a row of {x.Length}", nameof(importance));
        Fit(x, y, importance);
    }

    private const int BlockSizeM = 16; // IQ1M_BLOCK_SIZE
    private const float GroupMaxEps = 1e-7f; // GROUP_MAX_EPS_IQ1_M

    /// <summary>Which δ groups 0 and 1 of a block have, by its shift pattern k (0: +,+  1: +,−  2: −,+  3: −,−): bits 3 and 7 of qh.</summary>
    private static ReadOnlySpan<byte> Masks => [0x00, 0x80, 0x08, 0x88];

    /// <summary>
    /// quantize_row_iq1_m_impl: per block of 16 the exact weighted least-squares split of the sorted weights into
    /// −1, 0, 1 with a shift ±δ per group of 8 (four patterns), the groups rounded to the grid (or their best listed
    /// neighbour), then the block scales to 3 bits and the super-scale refitted to them (with ggml's fudge factor).
    /// <paramref name="quantWeights"/> empty: x² as the weights, as ggml without an importance matrix.
    /// </summary>
    private static void Fit(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> quantWeights)
    {
        var lattice = IQ2Lattice.For(TensorType.IQ1_M);
        var kmap = lattice.Map;
        const int blockSize = BlockSizeM, QK_K = KQuantFits.QK_K;
        ReadOnlySpan<float> x_p = [-1 + IQ1Grid.IQ1M_DELTA, IQ1Grid.IQ1M_DELTA, 1 + IQ1Grid.IQ1M_DELTA];
        ReadOnlySpan<float> x_m = [-1 - IQ1Grid.IQ1M_DELTA, -IQ1Grid.IQ1M_DELTA, 1 - IQ1Grid.IQ1M_DELTA];
        Span<float> scales = stackalloc float[QK_K / blockSize], weight = stackalloc float[blockSize];
        // Per level and sorted position, each pattern's Σ terms w·q·x (0-3) and w·q² (4-7); running sums alike.
        Span<float> terms = stackalloc float[8 * 3 * blockSize];
        Span<float> low = stackalloc float[8], middle = stackalloc float[8], sums = stackalloc float[8];
        Span<int> idx = stackalloc int[blockSize];
        Span<sbyte> L = stackalloc sbyte[blockSize];
        Span<ushort> index = stackalloc ushort[blockSize / 8];
        // ggml leaves shifts[ib] as it was for a block too small to fit (its scale is 0) and reads it for the
        // block's δ bits: the previous super-block's, or what the stack held at the first. Here that is 0.
        Span<sbyte> shifts = stackalloc sbyte[QK_K / blockSize];
        shifts.Clear();
        var blocks = MemoryMarshal.Cast<byte, BlockIQ1_M>(y);
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            Span<byte> qs = block.Qs, qh = block.Qh, scaleBytes = block.Scales;
            qs.Clear();
            qh.Clear();
            scaleBytes.Clear();
            float maxScale = 0;
            var xbl = x.Slice(QK_K * ibl, QK_K);
            float sigma2 = IQ1Search.Sigma2(xbl);
            for (int ib = 0; ib < QK_K / blockSize; ++ib)
            {
                var xb = xbl.Slice(blockSize * ib, blockSize);
                IQ1Search.Weights(xb, quantWeights.IsEmpty ? default : quantWeights.Slice(QK_K * ibl + blockSize * ib, blockSize), sigma2, weight);
                float max = IQ1Search.MaxAbs(xb);
                if (max < GroupMaxEps)
                {
                    scales[ib] = 0;
                    continue;
                }
                // The exact minimum over the two boundaries i1 ≤ i2 of the sorted weights (−1, 0, 1) and the four
                // shift patterns. ggml sums each split's terms afresh, position by position in sorted order; the
                // terms are taken once here (ggml's products: w·q·x and w·q·q, left to right) and the sums share
                // their prefixes (the level-0 terms over i1, the level-1 terms over i2), which are the same
                // additions in the same order: the same floats, in about a third of the work.
                IQ1Search.SortAscending(xb, idx);
                for (int j = 0; j < blockSize; ++j)
                {
                    int i = idx[j];
                    for (int level = 0; level < 3; ++level)
                    {
                        float p = x_p[level], m = x_m[level];
                        // Patterns 0, 1 take +δ for group 0, 2, 3 −δ; patterns 0, 2 take +δ for group 1, 1, 3 −δ.
                        var t = terms.Slice(8 * (blockSize * level + j), 8);
                        for (int k = 0; k < 4; ++k)
                        {
                            float q = k == 0 ? p : k == 3 ? m : (i < blockSize / 2) == (k == 1) ? p : m;
                            t[k] = weight[i] * q * xb[i];
                            t[4 + k] = weight[i] * q * q;
                        }
                    }
                }
                float bestScore = -IQ1Search.FLT_MIN, scale = max;
                int besti1 = -1, besti2 = -1, bestK = -1;
                low.Clear();
                for (int i1 = 0; i1 <= blockSize; ++i1)
                {
                    if (i1 > 0) Add(low, terms.Slice(8 * (i1 - 1), 8));
                    low.CopyTo(middle);
                    for (int i2 = i1; i2 <= blockSize; ++i2)
                    {
                        if (i2 > i1) Add(middle, terms.Slice(8 * (blockSize + i2 - 1), 8));
                        middle.CopyTo(sums);
                        for (int j = i2; j < blockSize; ++j) Add(sums, terms.Slice(8 * (2 * blockSize + j), 8));
                        for (int k = 0; k < 4; ++k)
                        {
                            float sumqx = sums[k], sumq2 = sums[4 + k];
                            if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2)
                            {
                                scale = sumqx / sumq2; bestScore = scale * sumqx;
                                besti1 = i1; besti2 = i2; bestK = k;
                            }
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
                    scale = -scale;
                    bestK = 3 - bestK; // 0 ↔ 3, 1 ↔ 2: both δ flip
                }
                bool allOnGrid = true;
                for (int k = 0; k < blockSize / 8; ++k)
                {
                    var xx = Shifted(bestK, k, x_p, x_m);
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
                    float sumqxF = 0, sumq2F = 0;
                    for (int k = 0; k < blockSize / 8; ++k)
                    {
                        var xx = Shifted(bestK, k, x_p, x_m);
                        var pg = lattice.Point(index[k]);
                        for (int j = 0; j < 8; ++j)
                        {
                            float w = weight[8 * k + j];
                            float q = xx[(pg[j] - 1) / 2];
                            sumqxF += w * q * xb[8 * k + j];
                            sumq2F += w * q * q;
                        }
                    }
                    if (sumqxF > 0 && sumq2F > 0) scale = sumqxF / sumq2F;
                }
                qs[2 * ib + 0] = (byte)(index[0] & 255);
                qs[2 * ib + 1] = (byte)(index[1] & 255);
                qh[ib] = (byte)((index[0] >> 8) | ((index[1] >> 8) << 4));
                scales[ib] = scale;
                shifts[ib] = (sbyte)bestK;
                maxScale = maxScale > scale ? maxScale : scale;
            }

            if (maxScale == 0) continue;
            var sc = MemoryMarshal.Cast<byte, ushort>(scaleBytes);
            float d = maxScale / 15;
            float id = 1 / d;
            float sumqxD = 0, sumq2D = 0;
            for (int ib = 0; ib < QK_K / blockSize; ++ib)
            {
                int l = GgmlHelpers.NearestInt(0.5f * (id * scales[ib + 0] - 1));
                l = Math.Max(0, Math.Min(7, l));
                sc[ib / 4] |= (ushort)(l << 3 * (ib % 4));
                qh[ib] |= Masks[shifts[ib]];
                var xb = xbl.Slice(blockSize * ib, blockSize);
                IQ1Search.Weights(xb, quantWeights.IsEmpty ? default : quantWeights.Slice(QK_K * ibl + blockSize * ib, blockSize), sigma2, weight);
                for (int k = 0; k < blockSize / 8; ++k)
                {
                    var xx = Shifted(shifts[ib], k, x_p, x_m);
                    var pg = lattice.Point(qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700));
                    for (int j = 0; j < 8; ++j)
                    {
                        float w = weight[8 * k + j];
                        float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                        sumqxD += w * q * xb[8 * k + j];
                        sumq2D += w * q * q;
                    }
                }
            }
            if (sumq2D > 0) d = sumqxD / sumq2D;
            // ggml: "1.1125f is another fudge factor. Don't ask me why it is needed."
            ushort s = BitConverter.HalfToUInt16Bits((Half)(d * 1.1125f));
            sc[0] |= (ushort)((s & 0x000f) << 12);
            sc[1] |= (ushort)((s & 0x00f0) << 8);
            sc[2] |= (ushort)((s & 0x0f00) << 4);
            sc[3] |= (ushort)(s & 0xf000);
        }
    }

    /// <summary>a += b, element by element.</summary>
    private static void Add(Span<float> a, ReadOnlySpan<float> b)
    {
        for (int k = 0; k < 8; ++k) a[k] += b[k];
    }

    /// <summary>The levels group <paramref name="k"/> (0 or 1) of a block with shift pattern <paramref name="pattern"/> stands for.</summary>
    private static ReadOnlySpan<float> Shifted(int pattern, int k, ReadOnlySpan<float> x_p, ReadOnlySpan<float> x_m) =>
        (k == 0 ? pattern < 2 : pattern % 2 == 0) ? x_p : x_m;

    /// <summary>ggml asserts here: no split had a positive weighted Σq² (every importance of the block is 0, or NaN input).</summary>
    private static AnyBitException NoFit() =>
        new("IQ1_M: a block of 16 columns has no usable importance (all 0 or not finite); llama.cpp aborts on such a tensor");

    /// <summary>d, from the top nibble of each of the four uint16 scale words (dequantize_row_iq1_m's scale.u16).</summary>
    private static float Scale(ReadOnlySpan<ushort> sc) =>
        (float)BitConverter.UInt16BitsToHalf((ushort)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ1_M>(bytes);
        ReadOnlySpan<byte> qs = b.Qs, qh = b.Qh;
        var sc = MemoryMarshal.Cast<byte, ushort>((ReadOnlySpan<byte>)b.Scales);
        o.D = Scale(sc) / 8;
        var grid = IQ1Grid.Points;
        for (int ib = 0; ib < 16; ib++)
        {
            o.Scales16[ib] = 2 * ((sc[ib / 4] >> (3 * (ib % 4))) & 7) + 1;
            for (int k = 0; k < 2; k++)
            {
                int h = qh[ib] >> (4 * k);
                ulong point = grid[qs[2 * ib + k] | ((h & 7) << 8)];
                int code = 32 + ((h & 8) != 0 ? -1 : 1);
                var c = o.Codes.Slice(16 * ib + 8 * k, 8);
                for (int j = 0; j < 8; j++) c[j] = (byte)(code + 8 * (sbyte)(point >> (8 * j)));
            }
        }
    }

    /// <summary>IQ1_S's integer form: see <see cref="IQ1_S.Kernel"/>.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
    }
}
