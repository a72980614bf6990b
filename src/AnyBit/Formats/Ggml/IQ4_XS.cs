using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>block_iq4_xs: 256 weights in 8 blocks of 32, w = d·(ls − 32)·kvalues_iq4nl[q] (6-bit ls); 4.25 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ4_XS
{
    public Half D;
    public ushort ScalesH;  // high 2 bits of block ib's scale at bits 2ib
    public Bytes4 ScalesL;  // low 4 bits: block ib in the low (even ib) or high (odd ib) nibble of byte ib/2
    public Bytes128 Qs;     // per block of 32, 16 bytes in the nibble layout (LegacyBlocks)
}

/// <summary>
/// IQ4_XS as quantize_iq4_xs writes it (<see cref="NonLinear4.Fit"/> over 256 weights, with the importance matrix
/// when one is given). Its integer form is IQ4_NL's
/// table with the block's signed scale per 32 (<see cref="Kernel"/>).
/// </summary>
internal sealed class IQ4_XS : GgmlBlockFormat<BlockIQ4_XS, IQ4_XS.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.IQ4_XS;
    public override uint? FileType => 30;
    public override int BlockSize => 256;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockIQ4_XS>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            block.D = NonLinear4.Fit(x.Slice(b * 256, 256), block.Qs, block.ScalesL, ref block.ScalesH,
                importance.IsEmpty ? default : importance.Slice(b * 256, 256));
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        Span<byte> qs = MemoryMarshal.AsRef<BlockIQ4_XS>(block).Qs;
        for (int ib = 0; ib < 8; ib++) LegacyBlocks.PackNibbles(codes.Slice(32 * ib, 32), qs.Slice(16 * ib, 16));
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ4_XS>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qs = b.Qs, sl = b.ScalesL;
        for (int ib = 0; ib < 8; ib++)
        {
            LegacyBlocks.UnpackNibbles(qs.Slice(16 * ib, 16), o.Codes.Slice(32 * ib, 32));
            int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((b.ScalesH >> (2 * ib)) & 3) << 4);
            o.Scales16[2 * ib] = o.Scales16[2 * ib + 1] = ls - 32;
        }
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 256; public static int Offset => -128;
        public static SubScaleLayout Layout => SubScaleLayout.Signed32; public static bool HasMins => false; public static bool HalfScale => true;
        public static byte[]? Lut => NonLinear4.Lut;
        public static bool HasLut => true; public static nint Tables => NonLinear4.Tables;
    }
}
