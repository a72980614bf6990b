using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace AnyBit.Kernels;

/// <summary>How a <see cref="HalfMatrix"/> holds each weight in 16 bits.</summary>
public enum HalfKind
{
    /// <summary>IEEE binary16, finite values only: F16 files, MXFP8 blocks whose scales keep every value in its range.</summary>
    F16,
    /// <summary>bfloat16: BF16 files (the upper half of a float32).</summary>
    BF16,
}

/// <summary>
/// A float weight [rows, columns] whose every value is exactly a 16-bit float, held in those 16 bits: half the
/// bytes a decode step streams from a float32 copy, with the same values, so <see cref="MatMulHalf"/> computes the
/// same bits as <see cref="MatMulF32"/> on the float32 copy. F16 and BF16 files qualify, as do MXFP8 blocks
/// (E4M3/E5M2 times a power of two: BF16 always holds them, F16 where the scales are not tiny), which the integer
/// kernels do not run and which were dequantized to float32 at load. Formats whose products carry more significant
/// bits than 16-bit floats have (FP8 groups with an F16 scale, NVFP4) keep float32.
/// </summary>
public sealed unsafe class HalfMatrix : IDisposable
{
    private ushort* _data;

    private HalfMatrix(HalfKind kind, int rows, int columns)
    {
        Kind = kind; Rows = rows; Columns = columns;
        _data = (ushort*)NativeMemory.AlignedAlloc((nuint)Math.Max(1L, (long)rows * columns) * sizeof(ushort), 64);
    }

    public HalfKind Kind { get; }
    public int Rows { get; }
    public int Columns { get; }
    public ushort* Pointer => _data;
    public long ByteLength => (long)Rows * Columns * sizeof(ushort);

    /// <summary>
    /// The matrix in 16 bits if every value of <paramref name="w"/> (row-major [rows, columns]) comes back from F16
    /// (tried first) or from BF16 with the same 32 bits; null otherwise, and the caller keeps the float32 copy.
    /// </summary>
    public static HalfMatrix? TryCreate(ReadOnlySpan<float> w, int rows, int columns)
    {
        if ((long)rows * columns != w.Length) throw new ArgumentException($"{w.Length} values for a [{rows}, {columns}] matrix");
        foreach (var kind in new[] { HalfKind.F16, HalfKind.BF16 })
        {
            var m = new HalfMatrix(kind, rows, columns);
            if (m.TryFill(w)) return m;
            m.Dispose();
        }
        return null;
    }

    /// <summary>Row <paramref name="row"/> as float32 into <paramref name="dst"/> (exactly the values it was made from).</summary>
    public void WidenRow(int row, Span<float> dst)
    {
        ushort* p = _data + (long)row * Columns;
        if (Kind == HalfKind.F16) TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(p, Columns), dst[..Columns]);
        else BFloat16Widening.Widen(p, dst[..Columns]);
    }

    private bool TryFill(ReadOnlySpan<float> w)
    {
        // A row at a time through a reused buffer: compress, widen back, compare bit for bit (so −0 stays −0).
        var back = new float[Columns];
        for (int r = 0; r < Rows; r++)
        {
            var src = w.Slice(r * Columns, Columns);
            ushort* p = _data + (long)r * Columns;
            if (Kind == HalfKind.F16)
            {
                // F16Elements widens finite values only: an infinity or NaN leaves F16 to BF16 (or float32).
                if (!TensorPrimitives.IsFiniteAll(src)) return false;
                TensorPrimitives.ConvertToHalf(src, new Span<Half>(p, Columns));
            }
            else for (int i = 0; i < Columns; i++) p[i] = (ushort)(BitConverter.SingleToUInt32Bits(src[i]) >> 16);
            WidenRow(r, back);
            if (!MemoryMarshal.AsBytes(src).SequenceEqual(MemoryMarshal.AsBytes(back.AsSpan()))) return false;
        }
        return true;
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
