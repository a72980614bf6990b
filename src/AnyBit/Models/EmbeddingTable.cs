using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Quantization;

namespace AnyBit.Models;

/// <summary>
/// The token embedding (V, D): the rows a session copies into the residual stream, one per token. Float32 when the
/// model is loaded as floats (the accuracy methods rewrite it in place) or stored so; otherwise the blocks as stored,
/// decoded a row at a time at lookup, as llama.cpp's get_rows does. A decoded row equals the same row of the whole
/// tensor decoded (blocks decode independently), and a Q8_0 embedding of a 200k vocabulary is then 0.6 GB instead of
/// 2.3 GB of floats.
/// </summary>
public sealed unsafe class EmbeddingTable : IDisposable
{
    private byte* _rows;                   // (V, rowBytes) as stored; null when Float holds the table
    private readonly long _rowBytes, _storedBytes;
    private readonly TensorFormat? _format;

    private EmbeddingTable(NativeBuffer values, int width) { Float = values; Width = width; }

    private EmbeddingTable(StoredTensor t, TensorFormat format)
    {
        Width = (int)t.RowLength; _format = format;
        _rowBytes = t.ByteLength / t.Rows; _storedBytes = t.ByteLength;
        _rows = (byte*)NativeMemory.Alloc((nuint)t.ByteLength);
        Buffer.MemoryCopy(t.Pointer, _rows, t.ByteLength, t.ByteLength);
        StoredType = t.TypeName;
    }

    /// <summary>(V, D) float32, or null when the rows are kept as stored.</summary>
    public NativeBuffer? Float { get; }

    /// <summary>D, the floats per row.</summary>
    public int Width { get; }

    /// <summary>The stored type kept (e.g. "Q8_0"); null for float32.</summary>
    public string? StoredType { get; }

    /// <summary>Bytes held.</summary>
    public long Bytes => Float is { } f ? f.Length * sizeof(float) : _storedBytes;

    public static EmbeddingTable FromFloat(NativeBuffer values, int width) => new(values, width);

    /// <summary>
    /// The stored rows of <paramref name="t"/> when they are a block type whose rows decode on their own (not float32,
    /// no per-tensor trailer); null otherwise.
    /// </summary>
    public static EmbeddingTable? TryKeepStored(StoredTensor t)
    {
        if (t.Type == TensorType.F32 || t.Shape.Length != 2 || t.InputOrder is not null) return null;
        var format = TensorDecoder.FormatOf(t);
        if (format is null || format.TensorTrailerBytes != 0 || t.RowLength % format.BlockSize != 0) return null;
        return new EmbeddingTable(t, format);
    }

    /// <summary>Writes row <paramref name="token"/> (Width floats) into <paramref name="destination"/>.</summary>
    public void CopyRow(int token, Span<float> destination)
    {
        if (Float is { } f) { new Span<float>(f.Pointer + (long)token * Width, Width).CopyTo(destination); return; }
        _format!.Dequantize(new ReadOnlySpan<byte>(_rows + token * _rowBytes, (int)_rowBytes), destination[..Width]);
    }

    public void Dispose()
    {
        Float?.Dispose();
        if (_rows != null) NativeMemory.Free(_rows);
        _rows = null;
    }
}
