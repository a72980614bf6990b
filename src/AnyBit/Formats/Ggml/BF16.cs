using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>BF16: the top 16 bits of a binary32, rounded to nearest even. Runs on the float kernels, held in 16 bits.</summary>
public sealed class BF16 : Quantization.GgmlFormat
{
    public override TensorType Type => TensorType.BF16;
    public override uint? FileType => 32;
    public override int BlockSize => 1;
    public override int BytesPerBlock => 2;
    internal override PackedKind? Kind => null;
    public override bool IsQuantized => false;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        var u = MemoryMarshal.Cast<byte, ushort>(dst);
        for (int i = 0; i < row.Length; i++) u[i] = BFloat16.FromSingle(row[i]);
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => BFloat16.ToSingle(MemoryMarshal.Cast<byte, ushort>(src), dst);
}
