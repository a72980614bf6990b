using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace AnyBit.Kernels;

/// <summary>How a <see cref="NarrowMatrix"/> holds each weight.</summary>
public enum NarrowKind
{
    /// <summary>IEEE binary16, finite values only: F16 files, and other weights whose values all are F16s.</summary>
    F16,
    /// <summary>bfloat16: BF16 files (the upper half of a float32).</summary>
    BF16,
    /// <summary>MXFP8 E4M3 blocks as stored: an E8M0 scale byte, then 32 one-byte elements.</summary>
    MxE4M3,
    /// <summary>MXFP8 E5M2 blocks as stored.</summary>
    MxE5M2,
    /// <summary>E4M3 blocks of 32 with a float32 scale, as stored (<c>e4m3fn:g32:f32</c>: FP8 checkpoints).</summary>
    ScaledE4M3,
}

/// <summary>
/// A float weight [rows, columns] held in fewer bits than float32 and widened to exactly its float32 values as
/// <see cref="MatMulNarrow"/>'s tiles load it, so the products are the bits <see cref="MatMulF32"/> computes on the
/// float32 copy. F16 and BF16 files, and any weight whose values all are 16-bit floats, take 16 bits; MXFP8 blocks
/// take their own 8.25 (each element's bits moved into a float's, times 2^(scale − bias)). These formats have no
/// integer kernel; before, they were dequantized to float32 at load. Formats whose values carry more significant
/// bits than a 16-bit float (NVFP4, FP8 groups with an F16 scale) keep float32, except FP8 blocks of 32 with a
/// float32 scale (FP8 checkpoints' tile or row scales), held as stored in 9 bits.
/// </summary>
public sealed unsafe class NarrowMatrix : IDisposable
{
    private byte* _data;

    private NarrowMatrix(NarrowKind kind, int rows, int columns, long bytes)
    {
        Kind = kind; Rows = rows; Columns = columns; ByteLength = bytes;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1L, bytes), 64);
    }

    public NarrowKind Kind { get; }
    /// <summary>What multiplies this matrix, for reports: <see cref="MatMulNarrow"/>, exact.</summary>
    public KernelChoice Choice => new($"{Kind} weights widened as loaded", "f32 4x4 tiles (exact)", "the format's values all are 16-bit floats or MXFP8 blocks");
    public int Rows { get; }
    public int Columns { get; }
    public byte* Pointer => _data;
    public long ByteLength { get; }

    /// <summary>
    /// The matrix in 16 bits if every value of <paramref name="w"/> (row-major [rows, columns]) comes back from F16
    /// (tried first) or from BF16 with the same 32 bits; null otherwise, and the caller keeps the float32 copy.
    /// </summary>
    public static NarrowMatrix? TryCreate(ReadOnlySpan<float> w, int rows, int columns)
    {
        if ((long)rows * columns != w.Length) throw new ArgumentException($"{w.Length} values for a [{rows}, {columns}] matrix");
        foreach (var kind in new[] { NarrowKind.F16, NarrowKind.BF16 })
        {
            var m = new NarrowMatrix(kind, rows, columns, 2L * rows * columns);
            if (m.TryFill16(w)) return m;
            m.Dispose();
        }
        return null;
    }

    /// <summary>Bytes of one MXFP8 block: the E8M0 scale and 32 elements.</summary>
    public const int MxBlockBytes = 33;

    /// <summary>
    /// MXFP8 blocks of 32 (<paramref name="stored"/>, as the file holds them) kept as they are, if every value they
    /// widen to is bit for bit <paramref name="w"/>, the format's own dequantization; null otherwise (NaN blocks or
    /// elements, scales past float32's exponent range once rebiased), and the caller uses <see cref="TryCreate"/>.
    /// </summary>
    public static NarrowMatrix? TryCreateMx(ReadOnlySpan<byte> stored, NarrowKind kind, ReadOnlySpan<float> w, int rows, int columns)
    {
        if (kind is not (NarrowKind.MxE4M3 or NarrowKind.MxE5M2)) throw new ArgumentException($"{kind} is not an MX kind");
        if ((long)rows * columns != w.Length) throw new ArgumentException($"{w.Length} values for a [{rows}, {columns}] matrix");
        if (columns % 32 != 0 || stored.Length != (long)rows * columns / 32 * MxBlockBytes) return null;
        var m = new NarrowMatrix(kind, rows, columns, stored.Length);
        stored.CopyTo(new Span<byte>(m._data, stored.Length));
        if (m.Matches(w)) return m;
        m.Dispose();
        return null;
    }

    /// <summary>Bytes of one scaled FP8 block: the float32 scale and 32 elements.</summary>
    public const int ScaledBlockBytes = 36;

    /// <summary>
    /// E4M3 blocks of 32 with a float32 scale (<paramref name="stored"/>, <c>e4m3fn:g32:f32</c>) kept as they are, if
    /// every value they widen to is bit for bit <paramref name="w"/>; null otherwise (NaN elements, scales past
    /// float32's range once rebiased).
    /// </summary>
    public static NarrowMatrix? TryCreateScaled(ReadOnlySpan<byte> stored, ReadOnlySpan<float> w, int rows, int columns)
    {
        if ((long)rows * columns != w.Length) throw new ArgumentException($"{w.Length} values for a [{rows}, {columns}] matrix");
        if (columns % 32 != 0 || stored.Length != (long)rows * columns / 32 * ScaledBlockBytes) return null;
        var m = new NarrowMatrix(NarrowKind.ScaledE4M3, rows, columns, stored.Length);
        stored.CopyTo(new Span<byte>(m._data, stored.Length));
        if (m.Matches(w)) return m;
        m.Dispose();
        return null;
    }

    /// <summary>Row <paramref name="row"/> as float32 into <paramref name="dst"/> (exactly the values it was made from).</summary>
    public void WidenRow(int row, Span<float> dst)
    {
        long at = (long)row * Columns;
        var span = dst[..Columns];
        switch (Kind)
        {
            case NarrowKind.F16: F16Elements.Widen(_data, at, span); break;
            case NarrowKind.BF16: BF16Elements.Widen(_data, at, span); break;
            case NarrowKind.MxE4M3: Fp8BlockElements<E4M3Bits, E8M0Block>.Widen(_data, at, span); break;
            case NarrowKind.ScaledE4M3: Fp8BlockElements<E4M3Bits, Float32Block>.Widen(_data, at, span); break;
            default: Fp8BlockElements<E5M2Bits, E8M0Block>.Widen(_data, at, span); break;
        }
    }

    private bool TryFill16(ReadOnlySpan<float> w)
    {
        for (int r = 0; r < Rows; r++)
        {
            var src = w.Slice(r * Columns, Columns);
            ushort* p = (ushort*)_data + (long)r * Columns;
            if (Kind == NarrowKind.F16)
            {
                // F16Elements widens finite values only: an infinity or NaN leaves F16 to BF16 (or float32).
                if (!TensorPrimitives.IsFiniteAll(src)) return false;
                TensorPrimitives.ConvertToHalf(src, new Span<Half>(p, Columns));
            }
            else for (int i = 0; i < Columns; i++) p[i] = (ushort)(BitConverter.SingleToUInt32Bits(src[i]) >> 16);
        }
        return Matches(w);
    }

    /// <summary>Every row widens to <paramref name="w"/>'s bits (so −0 stays −0, and a NaN never slips through).</summary>
    private bool Matches(ReadOnlySpan<float> w)
    {
        var back = new float[Columns];
        for (int r = 0; r < Rows; r++)
        {
            WidenRow(r, back);
            if (!MemoryMarshal.AsBytes(w.Slice(r * Columns, Columns)).SequenceEqual(MemoryMarshal.AsBytes(back.AsSpan()))) return false;
        }
        return true;
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
