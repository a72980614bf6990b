using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>F16: IEEE binary16, rounded to nearest even. Runs on the float kernels, held in 16 bits (NarrowMatrix).</summary>
public sealed class F16 : Quantization.GgmlFormat
{
    public override TensorType Type => TensorType.F16;
    public override uint? FileType => 1;
    public override int BlockSize => 1;
    public override int BytesPerBlock => 2;
    internal override PackedKind? Kind => null;
    public override bool IsQuantized => false;
    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) => TensorPrimitives.ConvertToHalf(row, MemoryMarshal.Cast<byte, Half>(dst));
    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);
}
