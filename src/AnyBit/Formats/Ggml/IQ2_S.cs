using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq2_s: 256 weights in 32 grid points of 8 (10-bit indices into iq2s_grid: low 8 bits in qs, high 2 in qh),
/// 8 explicit sign bits per 8 and a 4-bit scale l per 16: w = d·(0.5 + l)·0.25·grid·sign; 2.5625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ2_S
{
    public Half D;
    public Bytes64 Qs;    // 32 low bytes of the grid indices, then the 32 sign bytes
    public Bytes8 Qh;     // high 2 bits of grid index 4i + j at bits 2j of byte i
    public Bytes8 Scales; // group of 16 number 2i in the low nibble of byte i, 2i + 1 in the high one
}

/// <summary>
/// IQ2_S as ggml's quantize_iq2_s writes it (<see cref="IQ2Fit"/> on the 1024-point lattice, per 16 weights, the
/// super-block scale shrunk by 0.9875). ggml quantizes it without an importance matrix too (weights σ²/4 + x²), so
/// the plain <see cref="QuantizeRow(ReadOnlySpan{float}, Span{byte})"/> is that path, although llama-quantize refuses
/// it. Its integer form is <see cref="IQ2_XXS"/>'s (<see cref="IQ2_XXS.Kernel"/>), which the kernels do not run yet.
/// </summary>
internal sealed class IQ2_S : GgmlBlockFormat<BlockIQ2_S, IQ2_XXS.Kernel>
{
    public override TensorType Type => TensorType.IQ2_S;
    // LLAMA_FTYPE_MOSTLY_IQ2_M: llama-quantize --pure IQ2_M writes IQ2_S tensors (its IQ2_S file type is a mix of
    // IQ2_XS tensors).
    public override uint? FileType => 29;
    public override int BlockSize => 256;
    public override bool UsesImportance => true;

    private static readonly IQ2Fit.Options Fit = new(EvenSigns: false, MaxEps: 1e-8f, QpStart: false, ClearOnSkip: false);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var lattice = IQ2Lattice.For(Type);
        var blocks = MemoryMarshal.Cast<byte, BlockIQ2_S>(y);
        Span<float> scales = stackalloc float[16], weight = stackalloc float[16];
        Span<sbyte> L = stackalloc sbyte[16];
        L.Clear();
        Span<int> gridIndex = stackalloc int[2], ls = stackalloc int[16];
        Span<byte> signs = stackalloc byte[2];
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            block = default;
            Span<byte> qs = block.Qs, qh = block.Qh, sc = block.Scales;
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = 2 * IQ2Fit.SumSquares(xbl) / 256;
            for (int ib = 0; ib < 16; ++ib)
            {
                var xb = xbl.Slice(16 * ib, 16);
                if (!importance.IsEmpty)
                {
                    var qw = importance.Slice(256 * ibl + 16 * ib, 16);
                    for (int i = 0; i < 16; ++i) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                }
                else
                {
                    for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
                }
                float scale = IQ2Fit.FitGroup(lattice, Fit, xb, weight, L, gridIndex, signs, TypeName);
                for (int k = 0; k < 2; ++k)
                {
                    int i8 = 2 * ib + k;
                    qs[i8] = (byte)(gridIndex[k] & 255);
                    qh[i8 / 4] |= (byte)((gridIndex[k] >> 8) << 2 * (i8 % 4));
                    qs[32 + i8] = signs[k];
                }
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            if (maxScale == 0) continue;
            float d = IQ2Fit.GroupScales(scales, maxScale, ls);
            block.D = (Half)(d * 0.9875f);
            for (int ib = 0; ib < 16; ++ib)
                if (ib % 2 == 0) sc[ib / 2] = (byte)ls[ib];
                else sc[ib / 2] |= (byte)(ls[ib] << 4);
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ2_S>(bytes);
        o.D = (float)b.D * 0.125f;
        ReadOnlySpan<byte> qs = b.Qs, qh = b.Qh, sc = b.Scales;
        var grid = IQ2Grids.iq2s_grid;
        for (int ib32 = 0; ib32 < 8; ++ib32)
        {
            o.Scales16[2 * ib32] = 2 * (sc[ib32] & 0xf) + 1;
            o.Scales16[2 * ib32 + 1] = 2 * (sc[ib32] >> 4) + 1;
            for (int l = 0; l < 4; ++l)
            {
                int index = qs[4 * ib32 + l] | (qh[ib32] << (8 - 2 * l) & 0x300);
                IQ2Levels.Decode8(grid[index], qs[32 + 4 * ib32 + l], o.Codes.Slice(32 * ib32 + 8 * l, 8));
            }
        }
    }
}
