using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>A ggml block type (or F32/F16/BF16), quantized byte-for-byte as llama.cpp does.</summary>
public sealed class GgmlFormat : TensorFormat
{
    public delegate void RowQuantizer(ReadOnlySpan<float> x, Span<byte> y);

    private readonly RowQuantizer _quantize;
    private readonly TensorTypeTraits _traits;

    public GgmlFormat(string name, TensorType type, RowQuantizer quantize)
    {
        Name = name;
        GgmlType = type;
        _traits = TensorTypes.Traits(type);
        _quantize = quantize;
    }

    public override string Name { get; }
    public override TensorType? GgmlType { get; }
    public override int BlockSize => _traits.BlockSize;
    public override int BytesPerBlock => _traits.BytesPerBlock;
    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) => _quantize(row, dst);
    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => TensorDecoder.Decode(GgmlType!.Value, src, dst);

    public static void F32(ReadOnlySpan<float> x, Span<byte> y) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(x).CopyTo(y);

    public static void F16(ReadOnlySpan<float> x, Span<byte> y)
    {
        var h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(y);
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(x, h);
    }

    public static void BF16(ReadOnlySpan<float> x, Span<byte> y)
    {
        var u = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(y);
        for (int i = 0; i < x.Length; i++) u[i] = BFloat16.FromSingle(x[i]);
    }
}
