using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq3_s: 256 weights in 8 blocks of 32, each block 8 points of <see cref="IQ3Lattice.Iq3sGrid"/> (9-bit
/// indices, 4 magnitudes each), a sign bit per weight and a 4-bit scale s: w = d·(1 + 2s)·grid·sign; 3.4375 bits per
/// weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ3_S
{
    public Half D;
    public Bytes64 Qs;    // low 8 bits of the grid indices, 8 per block of 32
    public Bytes8 Qh;     // 9th bits: bit k of byte ib is index k of block ib
    public Bytes32 Signs; // bit i % 8 of byte i / 8 is weight i's sign (within each block of 32: 4 bytes)
    public Bytes4 Scales; // s of block ib in the low (even ib) or high (odd ib) nibble of byte ib/2
}

/// <summary>
/// IQ3_S as quantize_iq3_s writes it, with an importance matrix or without (ggml's null quant_weights: weights x²).
/// Per block of 32 the signs are stored as they are and <see cref="IQ3Lattice.Search"/> fits a scale over 19 trials;
/// the block scales go to 4 bits of one f16 scale. Its integer form is Q6_K's layout exactly (<see cref="Kernel"/>):
/// code = 32 ± grid (1..15), sub-scale 1 + 2s per 16, the f16 d as stored.
/// </summary>
internal sealed class IQ3_S : GgmlBlockFormat<BlockIQ3_S, IQ3_S.Kernel>
{
    public override TensorType Type => TensorType.IQ3_S;
    public override uint? FileType => 26; // LLAMA_FTYPE_MOSTLY_IQ3_S
    public override int BlockSize => QK_K;
    public override bool UsesImportance => true;

    private const int QK_K = 256;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var lattice = IQ3Lattice.S;
        var blocks = MemoryMarshal.Cast<byte, BlockIQ3_S>(y);
        Span<float> scales = stackalloc float[QK_K / 32];
        Span<float> weight = stackalloc float[32], xval = stackalloc float[32], waux = stackalloc float[32];
        Span<byte> blockSigns = stackalloc byte[4];
        Span<sbyte> L = stackalloc sbyte[32];
        Span<bool> isOnGrid = stackalloc bool[8];
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            block = default;
            Span<byte> qs = block.Qs, qh = block.Qh, signs = block.Signs;
            // Where the next block's indices and signs go. ggml advances these only past blocks it fits, so after an
            // all-zero block of 32 the later blocks' indices and signs land one block early (and dequantize
            // misplaced); the same bytes are written here.
            int qsAt = 0, signsAt = 0;
            float maxScale = 0;
            var xbl = x.Slice(QK_K * ibl, QK_K);
            float sumx2 = 0;
            for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
            float sigma2 = 2 * sumx2 / QK_K;
            for (int ib = 0; ib < QK_K / 32; ++ib)
            {
                var xb = xbl.Slice(32 * ib, 32);
                if (!importance.IsEmpty)
                {
                    var qw = importance.Slice(QK_K * ibl + 32 * ib, 32);
                    for (int i = 0; i < 32; ++i) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                }
                else
                {
                    for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
                }
                for (int i = 0; i < 32; ++i) waux[i] = MathF.Sqrt(weight[i]);
                for (int k = 0; k < 4; ++k)
                {
                    int s = 0;
                    for (int i = 0; i < 8; ++i)
                    {
                        if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
                        else
                        {
                            xval[8 * k + i] = -xb[8 * k + i]; s |= 1 << i;
                        }
                    }
                    blockSigns[k] = (byte)s;
                }
                float max = xval[0];
                for (int i = 1; i < 32; ++i) max = max > xval[i] ? max : xval[i];
                if (max == 0)
                {
                    scales[ib] = 0;
                    continue;
                }
                isOnGrid.Clear();
                float scale = lattice.Search(xval, weight, waux, max, 9, refineAll: true, L, isOnGrid);
                if (scale < 0)
                {
                    // ggml: "should never happen"; the scale is stored unsigned, so the signs flip instead.
                    scale = -scale;
                    for (int k = 0; k < 4; ++k) blockSigns[k] = (byte)~blockSigns[k];
                }
                for (int k = 0; k < 8; ++k)
                {
                    int gridIndex = lattice.IndexOf(L.Slice(4 * k, 4));
                    qs[qsAt + k] = (byte)gridIndex;
                    qh[ib] |= (byte)((gridIndex >> 8) << k);
                }
                qsAt += 8;
                blockSigns.CopyTo(signs.Slice(signsAt, 4));
                signsAt += 4;
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }

            if (maxScale == 0) continue;
            float d = maxScale / 31;
            block.D = (Half)(d * 1.033f); // ggml's fudge factor
            float id = 1 / d;
            Span<byte> sc = block.Scales;
            for (int ib = 0; ib < QK_K / 32; ib += 2)
            {
                int l1 = NearestInt(0.5f * (id * scales[ib + 0] - 1));
                l1 = Math.Max(0, Math.Min(15, l1));
                int l2 = NearestInt(0.5f * (id * scales[ib + 1] - 1));
                l2 = Math.Max(0, Math.Min(15, l2));
                sc[ib / 2] = (byte)(l1 | (l2 << 4));
            }
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ3_S>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qs = b.Qs, qh = b.Qh, signs = b.Signs, sc = b.Scales;
        var grid = IQ3Lattice.Iq3sGrid;
        var c = o.Codes;
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32)
        {
            o.Scales16[2 * ib32] = o.Scales16[2 * ib32 + 1] = 1 + 2 * ((sc[ib32 / 2] >> (4 * (ib32 % 2))) & 0xF);
            for (int k = 0; k < 8; ++k)
            {
                uint point = grid[qs[8 * ib32 + k] | (((qh[ib32] >> k) & 1) << 8)];
                for (int j = 0; j < 4; ++j)
                {
                    int i = 32 * ib32 + 4 * k + j;
                    int g = (int)(point >> (8 * j)) & 0xFF;
                    c[i] = (byte)(32 + ((signs[i / 8] >> (i % 8) & 1) != 0 ? -g : g));
                }
            }
        }
    }

    /// <summary>Q6_K's layout: 6-bit codes (17..47 here), offset −32, a signed scale per 16, f16 d.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
