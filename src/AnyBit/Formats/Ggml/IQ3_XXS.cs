using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;
using static AnyBit.Formats.Ggml.IQ2Grids;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq3_xxs: 256 weights in 8 blocks of 32, each block 8 points of <see cref="IQ3Lattice.Iq3xxsGrid"/> (4
/// magnitudes each) with 7 stored signs per 8 weights (the 8th makes the count of minus signs even) and a 4-bit scale s:
/// w = d·(0.5 + s)·0.5·grid·sign; 3.0625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ3_XXS
{
    public Half D;
    public Bytes96 Qs; // 64 grid indices (8 per block of 32), then per block a little-endian uint32: four 7-bit sign indices at bits 7k, s at bits 28-31
}

/// <summary>
/// IQ3_XXS as quantize_iq3_xxs writes it, with an importance matrix or without (ggml's null quant_weights: weights x²).
/// Per block of 32 the signs are folded into the weights (flipping the least important one where their count is odd),
/// and <see cref="IQ3Lattice.Search"/> fits a scale over 31 trials; the block scales go to 4 bits of one f16 scale.
/// </summary>
/// <remarks>
/// Its integer form is exact in Q6_K's layout (<see cref="Kernel"/>): code = 32 ± grid/2 (the grid bytes are even,
/// at most 62), sub-scale 2s + 1 per 16 and d/2 as the block scale: d·(0.5 + s)·0.5 = (d/2)·(2s + 1)/2 exactly (an
/// f16 times at most 5 significant bits), so ((d/2)·(2s + 1))·(grid/2) rounds as ggml's (d·(0.5 + s)·0.5)·grid. The
/// scale 1/2 has no integer form, and d/2 is not always an f16 (a subnormal f16 d with its last bit set), so the kind
/// needs f32 block scales (HalfScale false), which every signed-sub-scale tile reads (BlockScale).
/// </remarks>
internal sealed class IQ3_XXS : GgmlBlockFormat<BlockIQ3_XXS, IQ3_XXS.Kernel>
{
    public override TensorType Type => TensorType.IQ3_XXS;
    public override uint? FileType => 23; // LLAMA_FTYPE_MOSTLY_IQ3_XXS
    public override int BlockSize => QK_K;
    public override bool UsesImportance => true;

    private const int QK_K = 256;

    /// <summary>GROUP_MAX_EPS_IQ3_XXS: a block of 32 whose largest magnitude is below it is not fitted (grid point 0, no
    /// signs, scale 0: every weight dequantizes to d, the grid having no zero).</summary>
    private const float GroupMaxEps = 1e-8f;


    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var lattice = IQ3Lattice.Xxs;
        var blocks = MemoryMarshal.Cast<byte, BlockIQ3_XXS>(y);
        Span<float> scales = stackalloc float[QK_K / 32];
        Span<float> weight = stackalloc float[32], xval = stackalloc float[32], waux = stackalloc float[32];
        Span<uint> scalesAndSigns = stackalloc uint[QK_K / 32];
        Span<byte> blockSigns = stackalloc byte[4];
        // ggml keeps L and is_on_grid from block to block (read when no trial scale fits: all weights zero); they
        // start cleared here, where ggml's start with whatever its stack held.
        Span<sbyte> L = stackalloc sbyte[32];
        Span<bool> isOnGrid = stackalloc bool[8];
        L.Clear();
        isOnGrid.Clear();
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            block = default;
            Span<byte> q3 = block.Qs;
            scalesAndSigns.Clear();
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
                    int nflip = 0;
                    int s = 0;
                    for (int i = 0; i < 8; ++i)
                    {
                        if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
                        else
                        {
                            xval[8 * k + i] = -xb[8 * k + i]; ++nflip; s |= 1 << i;
                        }
                    }
                    if (nflip % 2 != 0)
                    {
                        // An odd count cannot be stored: the least important weight takes the wrong sign.
                        int imin = 0;
                        float min = weight[8 * k + imin] * xb[8 * k + imin] * xb[8 * k + imin];
                        for (int i = 1; i < 8; ++i)
                        {
                            float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                            if (ax < min)
                            {
                                min = ax; imin = i;
                            }
                        }
                        xval[8 * k + imin] = -xval[8 * k + imin];
                        s ^= 1 << imin;
                    }
                    blockSigns[k] = (byte)(s & 127);
                }
                float max = xval[0];
                for (int i = 1; i < 32; ++i) max = max > xval[i] ? max : xval[i];
                if (max < GroupMaxEps)
                {
                    scales[ib] = 0;
                    L.Clear();
                    continue;
                }
                float scale = lattice.Search(xval, weight, waux, max, 15, refineAll: false, L, isOnGrid);
                if (scale < 0)
                {
                    // ggml: "should never happen"; the scale is stored unsigned, so the signs flip instead.
                    scale = -scale;
                    for (int k = 0; k < 4; ++k) blockSigns[k] = (byte)(~blockSigns[k] & 127);
                }
                for (int k = 0; k < 8; ++k) q3[8 * ib + k] = (byte)lattice.IndexOf(L.Slice(4 * k, 4));
                scalesAndSigns[ib] = (uint)(blockSigns[0] | (blockSigns[1] << 7) | (blockSigns[2] << 14) | (blockSigns[3] << 21));
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }

            if (maxScale == 0)
            {
                block = default;
                continue;
            }
            float d = maxScale / 31;
            block.D = (Half)(d * 1.0125f); // ggml's fudge factor
            float id = 1 / d;
            for (int ib = 0; ib < QK_K / 32; ++ib)
            {
                int l = NearestInt(0.5f * (id * scales[ib] - 1));
                l = Math.Max(0, Math.Min(15, l));
                scalesAndSigns[ib] |= (uint)l << 28;
                BinaryPrimitives.WriteUInt32LittleEndian(q3.Slice(QK_K / 4 + 4 * ib, 4), scalesAndSigns[ib]);
            }
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ3_XXS>(bytes);
        o.D = (float)b.D * 0.5f;
        ReadOnlySpan<byte> qs = b.Qs;
        var grid = IQ3Lattice.Iq3xxsGrid;
        var c = o.Codes;
        for (int ib32 = 0; ib32 < QK_K / 32; ++ib32)
        {
            uint aux32 = BinaryPrimitives.ReadUInt32LittleEndian(qs.Slice(QK_K / 4 + 4 * ib32, 4));
            o.Scales16[2 * ib32] = o.Scales16[2 * ib32 + 1] = 2 * (int)(aux32 >> 28) + 1;
            for (int k = 0; k < 8; ++k)
            {
                uint point = grid[qs[8 * ib32 + k]];
                // Points 2l and 2l + 1 share sign byte l: the 7 stored bits, the 8th from ksigns_iq2xs.
                byte signs = ksigns_iq2xs[(int)(aux32 >> (7 * (k / 2))) & 127];
                for (int j = 0; j < 4; ++j)
                {
                    int g = ((int)(point >> (8 * j)) & 0xFF) / 2;
                    c[32 * ib32 + 4 * k + j] = (byte)(32 + ((signs & kmask_iq2xs[4 * (k % 2) + j]) != 0 ? -g : g));
                }
            }
        }
    }

    /// <summary>Q6_K's layout with f32 block scales (see the remarks): 6-bit codes, offset −32, a signed scale per 16.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false; public static bool HalfScale => false;
    }
}
