using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// A storage format for a weight tensor: how a row of floats becomes blocks of bytes and back. Every format has a
/// scalar reference quantizer and dequantizer written from its specification; a row's length must be a whole
/// number of blocks. Formats ggml knows carry its type id so that llama.cpp can read the files; the others are
/// stored under AnyBit type ids declared in the file's metadata.
/// </summary>
public abstract class TensorFormat
{
    /// <summary>The canonical spec string, e.g. "q4_k", "int3:g64:asym", "e3m2fn:g32".</summary>
    public abstract string Name { get; }

    /// <summary>ggml's type id, or null for formats ggml lacks.</summary>
    public abstract TensorType? GgmlType { get; }

    /// <summary>Weights per block.</summary>
    public abstract int BlockSize { get; }

    /// <summary>Bytes per block, scales included.</summary>
    public abstract int BytesPerBlock { get; }

    /// <summary>Storage bits per weight.</summary>
    public double BitsPerWeight => 8.0 * BytesPerBlock / BlockSize;

    /// <summary>
    /// Bytes a tensor stores once after its blocks: bitnet.cpp's I2_S keeps its per-tensor scale in a 32-byte tail.
    /// 0 for block formats, whose rows are independent; a format with a trailer quantizes and dequantizes whole
    /// tensors (blocks and trailer), and one row is a tensor of one row.
    /// </summary>
    public virtual int TensorTrailerBytes => 0;

    /// <summary>Bytes a tensor of <paramref name="elements"/> weights takes (its blocks and trailer).</summary>
    public long ByteSize(long elements) => elements / BlockSize * BytesPerBlock + TensorTrailerBytes;

    /// <summary>Null when rows of this length can be stored; otherwise why not.</summary>
    public virtual string? CheckRowLength(long rowLength) =>
        rowLength % BlockSize == 0 ? null : $"rows of {rowLength} are not a multiple of {Name}'s block of {BlockSize}";

    /// <summary>
    /// The concrete format for rows of <paramref name="rowLength"/>: formats whose block is "one row" (per-channel or
    /// per-tensor scales) resolve their group size here; block formats return themselves.
    /// </summary>
    public virtual TensorFormat Bind(long rowLength) => this;

    /// <summary>Quantizes a whole tensor (rows of <paramref name="rowLength"/>) into <paramref name="dst"/>.</summary>
    public virtual unsafe void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst)
    {
        int rowBytes = (int)ByteSize(rowLength);
        int rows = tensor.Length / rowLength;
        // Rows are independent, so they are quantized in parallel chunks; the bytes do not depend on the order.
        fixed (float* src = tensor)
        fixed (byte* output = dst)
        {
            float* s = src;
            byte* o = output;
            int chunk = Math.Max(1, Math.Min(rows, (1 << 16) / Math.Max(1, rowLength)));
            Parallel.For(0, (rows + chunk - 1) / chunk, c =>
            {
                for (int r = c * chunk; r < Math.Min(rows, (c + 1) * chunk); r++)
                    QuantizeRow(new ReadOnlySpan<float>(s + (long)r * rowLength, rowLength), new Span<byte>(o + (long)r * rowBytes, rowBytes));
            });
        }
    }

    /// <summary>Quantizes one row (a whole number of blocks).</summary>
    public abstract void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst);

    /// <summary>
    /// Quantizes one row weighting each column's squared error by <paramref name="importance"/> (one value per column:
    /// the mean x² of that input channel, llama.cpp's quant_weights), as ggml's quantize_&lt;type&gt; does when given an
    /// importance matrix. Formats without a weighted fit (<see cref="UsesImportance"/> false) quantize as without it.
    /// </summary>
    public virtual void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst, ReadOnlySpan<float> importance) => QuantizeRow(row, dst);

    /// <summary>True when an importance matrix changes this format's bytes (it has a weighted fit).</summary>
    public virtual bool UsesImportance => false;

    /// <summary>True for the types llama.cpp refuses to quantize without an importance matrix (ggml_quantize_requires_imatrix).</summary>
    public virtual bool RequiresImportance => false;

    /// <summary>
    /// Quantizes a whole tensor with per-column importance (<paramref name="importance"/>.Length == <paramref name="rowLength"/>),
    /// or as <see cref="Quantize(ReadOnlySpan{float}, int, Span{byte})"/> when it is empty or the format has no weighted fit.
    /// </summary>
    public unsafe void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty || !UsesImportance)
        {
            Quantize(tensor, rowLength, dst);
            return;
        }
        if (importance.Length != rowLength) throw new ArgumentException($"importance has {importance.Length} values for rows of {rowLength}", nameof(importance));
        int rowBytes = (int)ByteSize(rowLength);
        int rows = tensor.Length / rowLength;
        fixed (float* src = tensor)
        fixed (float* imp = importance)
        fixed (byte* output = dst)
        {
            float* s = src, w = imp;
            byte* o = output;
            int chunk = Math.Max(1, Math.Min(rows, (1 << 16) / Math.Max(1, rowLength)));
            Parallel.For(0, (rows + chunk - 1) / chunk, c =>
            {
                for (int r = c * chunk; r < Math.Min(rows, (c + 1) * chunk); r++)
                    QuantizeRow(new ReadOnlySpan<float>(s + (long)r * rowLength, rowLength), new Span<byte>(o + (long)r * rowBytes, rowBytes),
                        new ReadOnlySpan<float>(w, rowLength));
            });
        }
    }

    /// <summary>Decodes whole blocks.</summary>
    public abstract void Dequantize(ReadOnlySpan<byte> src, Span<float> dst);

    /// <summary>
    /// How this format runs on the integer kernels: its packed layout and kernel binding. Null is the explicit marker
    /// that it runs on the float path (dequantized, or held narrow, at load).
    /// </summary>
    internal abstract Kernels.Quantized.PackedKind? Kind { get; }

    /// <summary>
    /// Reads one block into integer codes and scales (<see cref="Kernels.Quantized.DecodedBlock"/>), for formats with a
    /// <see cref="Kind"/>: the one place a block's bit layout is read for the kernels.
    /// </summary>
    internal virtual void DecodeBlock(ReadOnlySpan<byte> block, ref Kernels.Quantized.DecodedBlock o) =>
        throw new NotSupportedException($"{Name} has no integer block decoder");

    /// <summary>False for the plain float types (f32, f16, bf16, f64), which store values rather than codes.</summary>
    public virtual bool IsQuantized => true;

    /// <summary>The spec stored in a GGUF file for an AnyBit type: the name, with any scope resolved to the stored layout.</summary>
    public virtual string StorageName => Name;

    public override string ToString() => Name;
}
