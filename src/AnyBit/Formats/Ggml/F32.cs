using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>F32: IEEE binary32. Runs on the float kernels.</summary>
public sealed class F32 : Quantization.GgmlFormat
{
    public override TensorType Type => TensorType.F32;
    public override uint? FileType => 0;
    public override int BlockSize => 1;
    public override int BytesPerBlock => 4;
    internal override PackedKind? Kind => null;
    public override bool IsQuantized => false;
    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) => MemoryMarshal.AsBytes(row).CopyTo(dst);
    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
}
