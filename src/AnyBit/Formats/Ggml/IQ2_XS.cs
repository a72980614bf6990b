using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq2_xs: 256 weights in 32 grid points of 8, each a uint16 of a 9-bit index into iq2xs_grid and 7 sign
/// bits, and a 4-bit scale l per 16: w = d·(0.5 + l)·0.25·grid·sign; 2.3125 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ2_XS
{
    public Half D;
    public Bytes64 Qs;    // ggml's uint16_t qs[QK_K/8], little-endian: grid index | signs << 9
    public Bytes8 Scales; // group of 16 number 2i in the low nibble of byte i, 2i + 1 in the high one
}

/// <summary>
/// IQ2_XS as ggml's quantize_iq2_xs writes it (<see cref="IQ2Fit"/> on the 512-point lattice, per 16 weights).
/// llama.cpp refuses it without an importance matrix (ggml_quantize_requires_imatrix), and so does this type. Its
/// integer form is <see cref="IQ2_XXS"/>'s (<see cref="IQ2_XXS.Kernel"/>), which the kernels do not run yet.
/// </summary>
internal sealed class IQ2_XS : GgmlBlockFormat<BlockIQ2_XS, IQ2_XXS.Kernel>
{
    public override TensorType Type => TensorType.IQ2_XS;
    public override uint? FileType => 20; // LLAMA_FTYPE_MOSTLY_IQ2_XS
    public override int BlockSize => 256;
    public override bool UsesImportance => true;
    public override bool RequiresImportance => true;

    private static readonly IQ2Fit.Options Fit = new(EvenSigns: true, MaxEps: 1e-15f, QpStart: false, ClearOnSkip: true);

    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst) => throw IQ2_XXS.NeedsImportance(TypeName);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => throw IQ2_XXS.NeedsImportance(TypeName);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw IQ2_XXS.NeedsImportance(TypeName);
        var lattice = IQ2Lattice.For(Type);
        var blocks = MemoryMarshal.Cast<byte, BlockIQ2_XS>(y);
        Span<float> scales = stackalloc float[16], weight = stackalloc float[16];
        Span<sbyte> L = stackalloc sbyte[16];
        L.Clear();
        Span<int> gridIndex = stackalloc int[2], ls = stackalloc int[16];
        Span<byte> signs = stackalloc byte[2];
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            block.D = (Half)0f;
            Span<byte> qs = block.Qs, sc = block.Scales;
            qs.Clear();
            sc.Clear();
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = IQ2Fit.SumSquares(xbl) / 256;
            for (int ib = 0; ib < 16; ++ib)
            {
                var xb = xbl.Slice(16 * ib, 16);
                var qw = importance.Slice(256 * ibl + 16 * ib, 16);
                for (int i = 0; i < 16; ++i) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                float scale = IQ2Fit.FitGroup(lattice, Fit, xb, weight, L, gridIndex, signs, TypeName);
                for (int k = 0; k < 2; ++k)
                    BinaryPrimitives.WriteUInt16LittleEndian(qs[(2 * (2 * ib + k))..], (ushort)(gridIndex[k] | signs[k] << 9));
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            if (maxScale == 0)
            {
                qs.Clear();
                continue;
            }
            float d = IQ2Fit.GroupScales(scales, maxScale, ls);
            block.D = (Half)d;
            for (int ib = 0; ib < 16; ++ib)
                if (ib % 2 == 0) sc[ib / 2] = (byte)ls[ib];
                else sc[ib / 2] |= (byte)(ls[ib] << 4);
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ2_XS>(bytes);
        o.D = (float)b.D * 0.125f;
        ReadOnlySpan<byte> qs = b.Qs, sc = b.Scales;
        var grid = IQ2Grids.iq2xs_grid;
        var ksigns = IQ2Grids.ksigns_iq2xs;
        for (int ib32 = 0; ib32 < 8; ++ib32)
        {
            o.Scales16[2 * ib32] = 2 * (sc[ib32] & 0xf) + 1;
            o.Scales16[2 * ib32 + 1] = 2 * (sc[ib32] >> 4) + 1;
            for (int l = 0; l < 4; ++l)
            {
                int q = BinaryPrimitives.ReadUInt16LittleEndian(qs[(2 * (4 * ib32 + l))..]);
                IQ2Levels.Decode8(grid[q & 511], ksigns[q >> 9], o.Codes.Slice(32 * ib32 + 8 * l, 8));
            }
        }
    }
}
