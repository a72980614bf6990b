using System.Buffers.Binary;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats;

/// <summary>
/// A plain element type AnyBit reads but never writes: safetensors' integer, boolean, f64 and FP8 dtypes, and
/// ggml's integer tensors. Each is one row of <see cref="ElementFormat.All"/>; a weight in one of them is decoded to
/// float32 at load.
/// </summary>
public sealed class ElementFormat : Quantization.TensorFormat
{
    private delegate float Reader(ReadOnlySpan<byte> element);

    private readonly Reader _read;

    private ElementFormat(TensorType type, string name, int bytes, Reader read)
    {
        Type = type; TypeName = name; BytesPerBlock = bytes; _read = read;
    }

    /// <summary>Every plain element type, one row each.</summary>
    public static IReadOnlyList<ElementFormat> All { get; } =
    [
        new(TensorType.F64, "F64", 8, b => (float)BinaryPrimitives.ReadDoubleLittleEndian(b)),
        new(TensorType.F8_E4M3, "F8_E4M3", 1, b => Float8.E4M3FnToSingle(b[0])),
        new(TensorType.F8_E5M2, "F8_E5M2", 1, b => Float8.E5M2ToSingle(b[0])),
        new(TensorType.I8, "I8", 1, b => (sbyte)b[0]),
        new(TensorType.I16, "I16", 2, b => BinaryPrimitives.ReadInt16LittleEndian(b)),
        new(TensorType.I32, "I32", 4, b => BinaryPrimitives.ReadInt32LittleEndian(b)),
        new(TensorType.I64, "I64", 8, b => BinaryPrimitives.ReadInt64LittleEndian(b)),
        new(TensorType.U8, "U8", 1, b => b[0]),
        new(TensorType.U16, "U16", 2, b => BinaryPrimitives.ReadUInt16LittleEndian(b)),
        new(TensorType.U32, "U32", 4, b => BinaryPrimitives.ReadUInt32LittleEndian(b)),
        new(TensorType.U64, "U64", 8, b => BinaryPrimitives.ReadUInt64LittleEndian(b)),
        new(TensorType.Bool, "BOOL", 1, b => b[0]),
    ];

    public TensorType Type { get; }
    /// <summary>The dtype as files name it: "I8", "BOOL".</summary>
    public string TypeName { get; }
    public override string Name => TypeName.ToLowerInvariant();
    public override TensorType? GgmlType => null;
    public override int BlockSize => 1;
    public override int BytesPerBlock { get; }
    /// <summary>Integer tensors are not weights: true for the float element types only.</summary>
    public bool IsFloat => Type is TensorType.F64 or TensorType.F8_E4M3 or TensorType.F8_E5M2;
    internal override PackedKind? Kind => null;
    public override bool IsQuantized => false;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) =>
        throw new AnyBitException($"{TypeName} is read only; AnyBit does not write it");

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int i = 0; i < dst.Length; i++) dst[i] = _read(src.Slice(i * BytesPerBlock, BytesPerBlock));
    }
}
