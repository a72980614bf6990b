using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>block_iq4_nl: 32 weights, w = d·kvalues_iq4nl[q]; 4.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ4_NL
{
    public Half D;
    public Bytes16 Qs; // 32 4-bit indices (LegacyBlocks layout)
}

/// <summary>
/// IQ4_NL as llama-quantize writes it: ggml's quantize_iq4_nl, i.e. the x²-weighted (or, given an importance matrix,
/// qw·sqrt(σ² + x²)-weighted) least-squares scale refined over 15 trial scales (<see cref="NonLinear4.Fit"/>), then every weight re-mapped to
/// its nearest code. (quantize_row_iq4_nl_ref skips the search and gives different bytes.) On the kernels an index
/// stands for its table value + 128 (<see cref="Kernel.Lut"/>), offset −128.
/// </summary>
internal sealed class IQ4_NL : GgmlBlockFormat<BlockIQ4_NL, IQ4_NL.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.IQ4_NL;
    public override uint? FileType => 25;
    public override int BlockSize => LegacyBlocks.QK;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockIQ4_NL>(y);
        ushort unused = 0;
        for (int b = 0; b < blocks.Length; b++)
            blocks[b].D = NonLinear4.Fit(x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK), blocks[b].Qs, default, ref unused,
                importance.IsEmpty ? default : importance.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK));
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes) => LegacyBlocks.PackNibbles(codes, MemoryMarshal.AsRef<BlockIQ4_NL>(block).Qs);

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ4_NL>(bytes);
        o.D = (float)b.D;
        LegacyBlocks.UnpackNibbles(b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -128;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
        public static byte[]? Lut => NonLinear4.Lut;
        public static bool HasLut => true; public static nint Tables => NonLinear4.Tables;
    }
}
