namespace AnyBit.IO;

/// <summary>
/// One tensor inside a memory-mapped file: name, shape (outermost dimension first, as in PyTorch), element type and
/// where its bytes are. Nothing is read until a caller asks for the data.
/// </summary>
public sealed unsafe class StoredTensor
{
    public StoredTensor(string name, long[] shape, TensorType type, MappedFile file, long offset, long byteLength,
        Quantization.TensorFormat? format = null)
    {
        Name = name; Shape = shape; Type = type; File = file; Offset = offset; ByteLength = byteLength; Format = format;
        ElementCount = TensorTypes.ElementCount(shape);
    }

    /// <summary>
    /// For a matrix whose columns are stored permuted (a GPTQ act-order checkpoint, its groups made contiguous at
    /// load): stored column k holds input column InputOrder[k]. Null when columns are in input order.
    /// <see cref="ToFloat32"/> returns input order either way.
    /// </summary>
    public int[]? InputOrder { get; init; }

    /// <summary>The AnyBit format of a tensor stored under an AnyBit type id (null for ggml and safetensors types).</summary>
    public Quantization.TensorFormat? Format { get; }

    /// <summary>The type as shown to users: "Q4_K", "BF16", "int3:g64:asym", ...</summary>
    public string TypeName => Format is not null && Format.GgmlType is null ? Format.Name : TensorTypes.Traits(Type).Name;

    /// <summary>Storage bits per weight.</summary>
    public double BitsPerWeight => ElementCount == 0 ? 0 : 8.0 * ByteLength / ElementCount;

    public string Name { get; }

    /// <summary>Dimensions, outermost first: a linear layer's weight is [out_features, in_features].</summary>
    public long[] Shape { get; }

    public TensorType Type { get; }
    public MappedFile File { get; }

    /// <summary>Absolute byte offset of the data in <see cref="File"/>.</summary>
    public long Offset { get; }

    public long ByteLength { get; }
    public long ElementCount { get; }

    /// <summary>First byte of the data inside the mapping.</summary>
    public byte* Pointer => File.Pointer + Offset;

    /// <summary>The raw bytes (tensors under 2 GiB).</summary>
    public ReadOnlySpan<byte> Bytes
    {
        get
        {
            if (ByteLength > int.MaxValue) throw new AnyBitException($"{Name}: tensor of {ByteLength} bytes is too large for a single span");
            return new ReadOnlySpan<byte>(Pointer, (int)ByteLength);
        }
    }

    /// <summary>Shape as text, e.g. "[512, 8192]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Number of rows when viewed as a matrix whose last dimension is the row length.</summary>
    public long Rows => Shape.Length == 0 ? 1 : ElementCount / Math.Max(1, Shape[^1]);

    /// <summary>Length of the innermost dimension.</summary>
    public long RowLength => Shape.Length == 0 ? 1 : Shape[^1];

    /// <summary>Decodes the whole tensor to float32.</summary>
    public float[] ToFloat32()
    {
        if (ElementCount > Array.MaxLength) throw new AnyBitException($"{Name}: {ElementCount} elements do not fit one array");
        var result = new float[ElementCount];
        TensorDecoder.ToFloat32(this, result);
        if (InputOrder is { } order)
        {
            var row = new float[order.Length];
            for (long r = 0; r < Rows; r++)
            {
                var span = result.AsSpan((int)(r * order.Length), order.Length);
                span.CopyTo(row);
                for (int k = 0; k < order.Length; k++) span[order[k]] = row[k];
            }
        }
        return result;
    }

    public override string ToString() => $"{Name} {TensorTypes.Traits(Type).Name} {ShapeText}";
}

/// <summary>A set of named tensors from one or more files (a safetensors checkpoint, a GGUF file, a llama2.c file).</summary>
public interface ITensorStore : IDisposable
{
    /// <summary>Every tensor, in file order.</summary>
    IReadOnlyList<StoredTensor> Tensors { get; }

    /// <summary>The tensor with this exact name, or null.</summary>
    StoredTensor? Find(string name);
}
