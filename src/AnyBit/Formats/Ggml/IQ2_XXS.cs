using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq2_xxs: 256 weights in 8 groups of 32, each 4 grid points of 8 (8-bit indices into iq2xxs_grid), 4 × 7 sign
/// bits and a 4-bit scale l: w = d·(0.5 + l)·0.25·grid·sign; 2.0625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ2_XXS
{
    public Half D;
    public Bytes64 Qs; // ggml's uint16_t qs[QK_K/8]; per group of 32, two little-endian uint32: the 4 grid indices
                       // (byte k), then the sign bits (7 per 8, from bit 7k) and the scale in bits 28..31
}

/// <summary>
/// IQ2_XXS as ggml's quantize_iq2_xxs writes it (<see cref="IQ2Fit"/> on IQ2_XXS's 256-point lattice). llama.cpp
/// refuses it without an importance matrix (ggml_quantize_requires_imatrix), and so does this type. Its integer form
/// (<see cref="IQ2Levels"/>: 6 table levels, an odd sub-scale per 16) runs on the table kernels with signed 16-value
/// sub-scales (IQ4_XS's) and a float32 block scale.
/// </summary>
internal sealed class IQ2_XXS : GgmlBlockFormat<BlockIQ2_XXS, IQ2_XXS.Kernel>
{
    public override TensorType Type => TensorType.IQ2_XXS;
    public override uint? FileType => 19; // LLAMA_FTYPE_MOSTLY_IQ2_XXS
    public override int BlockSize => 256;
    public override bool UsesImportance => true;
    public override bool RequiresImportance => true;

    private static readonly IQ2Fit.Options Fit = new(EvenSigns: true, MaxEps: 1e-15f, QpStart: true, ClearOnSkip: true);

    internal static AnyBitException NeedsImportance(string type) => new(
        $"{type} needs an importance matrix (--imatrix): llama.cpp refuses to quantize it without one, as the result would be garbage (ggml_quantize_requires_imatrix)");

    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst) => throw NeedsImportance(TypeName);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => throw NeedsImportance(TypeName);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw NeedsImportance(TypeName);
        var lattice = IQ2Lattice.For(Type);
        var blocks = MemoryMarshal.Cast<byte, BlockIQ2_XXS>(y);
        Span<float> scales = stackalloc float[8], weight = stackalloc float[32];
        Span<sbyte> L = stackalloc sbyte[32];
        L.Clear();
        Span<int> gridIndex = stackalloc int[4], ls = stackalloc int[8];
        Span<byte> signs = stackalloc byte[4];
        Span<uint> q2 = stackalloc uint[16];
        for (int ibl = 0; ibl < blocks.Length; ++ibl)
        {
            ref var block = ref blocks[ibl];
            block.D = (Half)0f;
            q2.Clear();
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = IQ2Fit.SumSquares(xbl) / 256;
            for (int ib = 0; ib < 8; ++ib)
            {
                var xb = xbl.Slice(32 * ib, 32);
                var qw = importance.Slice(256 * ibl + 32 * ib, 32);
                for (int i = 0; i < 32; ++i) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                float scale = IQ2Fit.FitGroup(lattice, Fit, xb, weight, L, gridIndex, signs, TypeName);
                for (int k = 0; k < 4; ++k)
                {
                    q2[2 * ib + 0] |= (uint)gridIndex[k] << 8 * k;
                    q2[2 * ib + 1] |= (uint)signs[k] << 7 * k;
                }
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            Span<byte> qs = block.Qs;
            if (maxScale == 0)
            {
                qs.Clear();
                continue;
            }
            float d = IQ2Fit.GroupScales(scales, maxScale, ls);
            block.D = (Half)d;
            for (int ib = 0; ib < 8; ++ib) q2[2 * ib + 1] |= (uint)ls[ib] << 28;
            MemoryMarshal.AsBytes(q2).CopyTo(qs);
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ2_XXS>(bytes);
        o.D = (float)b.D * 0.125f;
        ReadOnlySpan<byte> qs = b.Qs;
        var grid = IQ2Grids.iq2xxs_grid;
        var ksigns = IQ2Grids.ksigns_iq2xs;
        for (int ib32 = 0; ib32 < 8; ++ib32)
        {
            uint aux1 = BinaryPrimitives.ReadUInt32LittleEndian(qs[(8 * ib32 + 4)..]);
            o.Scales16[2 * ib32] = o.Scales16[2 * ib32 + 1] = 2 * (int)(aux1 >> 28) + 1;
            for (int l = 0; l < 4; ++l)
                IQ2Levels.Decode8(grid[qs[8 * ib32 + l]], ksigns[(int)(aux1 >> 7 * l) & 127], o.Codes.Slice(32 * ib32 + 8 * l, 8));
        }
    }

    /// <summary>The IQ2 integer form (<see cref="IQ2Levels"/>): 4-bit table indices, signed sub-scales per 16, f32 D.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 256; public static int Offset => -128;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
        // D = d/8 is exact in f32 but not in f16 for d below 2^-11.
        public static bool HalfScale => false;
        public static byte[]? Lut => IQ2Levels.Lut;
        public static bool HasLut => true; public static nint Tables => IQ2Levels.Tables;
    }
}
