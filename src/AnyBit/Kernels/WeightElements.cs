using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels;

/// <summary>
/// How <see cref="MatMulF32"/>'s tiles read a weight stored in some float type: 16 at a time as float32, one at a
/// time, or a row into a buffer. Each must give exactly the float32 value the weight stands for.
/// </summary>
internal unsafe interface IWeightElements
{
    static abstract Vector512<float> Load16(void* w, long i);
    static abstract float At(void* w, long i);
    static abstract void Widen(void* w, long i, Span<float> row);
    /// <summary>Asks for weight <paramref name="i"/>'s cache line (into L1); callers check Sse.IsSupported.</summary>
    static abstract void Prefetch(void* w, long i);
}

internal unsafe struct F32Elements : IWeightElements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i) => Vector512.Load((float*)w + i);
    public static float At(void* w, long i) => ((float*)w)[i];
    public static void Widen(void* w, long i, Span<float> row) => new ReadOnlySpan<float>((float*)w + i, row.Length).CopyTo(row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((float*)w + i);
}

/// <summary>
/// Finite IEEE binary16 values (<see cref="HalfMatrix"/> stores no others as F16). Widened in four instructions
/// as <see cref="Quantized.HalfWidening"/> does (.NET 10 exposes no vcvtph2ps): the bits sign-extended and shifted
/// into a float's places, the sign copies in bits 28-30 masked off, ×2¹¹² to rebias normals and subnormals alike.
/// </summary>
internal unsafe struct F16Elements : IWeightElements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i)
    {
        var h = Avx512F.IsSupported
            ? Avx512F.ConvertToVector512Int32(Vector256.Load((short*)w + i))
            : Vector512.WidenLower(Vector512.Create(Vector256.Load((short*)w + i), Vector256<short>.Zero));
        var bits = Vector512.ShiftLeft(h, 13) & Vector512.Create(unchecked((int)0x8FFFE000));
        return bits.AsSingle() * Vector512.Create(BitConverter.Int32BitsToSingle(0x77800000));
    }
    public static float At(void* w, long i) => (float)((Half*)w)[i];
    public static void Widen(void* w, long i, Span<float> row) => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)w + i, row.Length), row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((ushort*)w + i);
}

/// <summary>bfloat16: the upper half of a float32, so a widening and a shift, exact for every value.</summary>
internal unsafe struct BF16Elements : IWeightElements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector512.Create(Vector256.Load((ushort*)w + i), Vector256<ushort>.Zero)), 16).AsSingle();
    public static float At(void* w, long i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[i] << 16);
    public static void Widen(void* w, long i, Span<float> row) => BFloat16Widening.Widen((ushort*)w + i, row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((ushort*)w + i);
}
