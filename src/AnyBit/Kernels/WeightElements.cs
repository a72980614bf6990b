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
    /// <summary>Weights i..i+31 (i a multiple of 32 for MX blocks) as <see cref="Load16"/> gives them, two at a time.</summary>
    static abstract void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi);
    /// <summary>Bytes 32 consecutive weights take (for how many cache lines to prefetch).</summary>
    static abstract int BytesPer32 { get; }
    static abstract float At(void* w, long i);
    static abstract void Widen(void* w, long i, Span<float> row);
    /// <summary>Asks for weight <paramref name="i"/>'s cache line (into L1); callers check Sse.IsSupported.</summary>
    static abstract void Prefetch(void* w, long i);
}

internal unsafe struct F32Elements : IWeightElements
{
    public static int BytesPer32 => 128;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi) { lo = Load16(w, i); hi = Load16(w, i + 16); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i) => Vector512.Load((float*)w + i);
    public static float At(void* w, long i) => ((float*)w)[i];
    public static void Widen(void* w, long i, Span<float> row) => new ReadOnlySpan<float>((float*)w + i, row.Length).CopyTo(row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((float*)w + i);
}

/// <summary>
/// Finite IEEE binary16 values (<see cref="NarrowMatrix"/> stores no others as F16), widened in four instructions by
/// <see cref="Quantized.HalfWidening"/> (.NET 10 exposes no vcvtph2ps).
/// </summary>
internal unsafe struct F16Elements : IWeightElements
{
    public static int BytesPer32 => 64;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi) { lo = Load16(w, i); hi = Load16(w, i + 16); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i) => Quantized.HalfWidening.Widen16Finite((short*)w + i);
    public static float At(void* w, long i) => (float)((Half*)w)[i];
    public static void Widen(void* w, long i, Span<float> row) => TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)w + i, row.Length), row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((ushort*)w + i);
}

/// <summary>bfloat16: the upper half of a float32, so a widening and a shift, exact for every value.</summary>
internal unsafe struct BF16Elements : IWeightElements
{
    public static int BytesPer32 => 64;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi) { lo = Load16(w, i); hi = Load16(w, i + 16); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector512.Create(Vector256.Load((ushort*)w + i), Vector256<ushort>.Zero)), 16).AsSingle();
    public static float At(void* w, long i) => Formats.BFloat16.ToSingle(((ushort*)w)[i]);
    public static void Widen(void* w, long i, Span<float> row) => Formats.BFloat16.ToSingle(new ReadOnlySpan<ushort>((ushort*)w + i, row.Length), row);
    public static void Prefetch(void* w, long i) => Sse.Prefetch0((ushort*)w + i);
}

/// <summary>Where an FP8 element's bits land in a float32 (sign-extended, then shifted) and what rebiases it.</summary>
internal interface IFp8Bits
{
    /// <summary>Left shift that puts the element's exponent field at a float's bit 23.</summary>
    static abstract int Shift { get; }
    /// <summary>The float's sign, plus the element's exponent and mantissa bits where the shift put them.</summary>
    static abstract int Mask { get; }
    /// <summary>127 − the element's exponent bias: the float times 2^Rebias is the element's value.</summary>
    static abstract int Rebias { get; }
}
internal struct E4M3Bits : IFp8Bits { public static int Shift => 20; public static int Mask => unchecked((int)0x87F00000); public static int Rebias => 120; }
internal struct E5M2Bits : IFp8Bits { public static int Shift => 21; public static int Mask => unchecked((int)0x8FE00000); public static int Rebias => 112; }

/// <summary>
/// MXFP8 blocks as stored (<see cref="NarrowMatrix.MxBlockBytes"/> bytes: the E8M0 scale s, then 32 elements). An
/// element's bits, sign-extended and shifted, are a float32 whose exponent field is the element's (normals and
/// subnormals alike) — the element's value × 2^−Rebias, exactly — so one multiply by 2^(s − 127 + Rebias), built from
/// its exponent bits, gives element × 2^(s − 127) rounded once, as the format's dequantizer computes it. The scales
/// and codes for which that would not hold (NaNs, scales past float32's range once rebiased) are refused at load by
/// <see cref="NarrowMatrix.TryCreateMx"/>, which compares every value with the dequantizer's.
/// </summary>
internal unsafe struct MxFp8Elements<TE> : IWeightElements where TE : struct, IFp8Bits
{
    public static int BytesPer32 => NarrowMatrix.MxBlockBytes;

    /// <summary>A whole block: its scale read and turned into the factor once for both halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi)
    {
        if (!Avx512F.IsSupported) { lo = Load16(w, i); hi = Load16(w, i + 16); return; }
        byte* block = (byte*)w + i + (i >> 5); // (i / 32)·33 for i a multiple of 32
        var factor = Vector512.Create(Factor(block[0]));
        var mask = Vector512.Create(TE.Mask);
        lo = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 1)), TE.Shift) & mask).AsSingle() * factor;
        hi = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 17)), TE.Shift) & mask).AsSingle() * factor;
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i)
    {
        if (!Avx512F.IsSupported) return Vector512.Create(At(w, i), At(w, i + 1), At(w, i + 2), At(w, i + 3), At(w, i + 4), At(w, i + 5), At(w, i + 6), At(w, i + 7),
            At(w, i + 8), At(w, i + 9), At(w, i + 10), At(w, i + 11), At(w, i + 12), At(w, i + 13), At(w, i + 14), At(w, i + 15));
        byte* block = (byte*)w + (i >> 5) * NarrowMatrix.MxBlockBytes;
        var codes = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 1 + (i & 31)));
        return (Vector512.ShiftLeft(codes, TE.Shift) & Vector512.Create(TE.Mask)).AsSingle() * Vector512.Create(Factor(block[0]));
    }

    public static float At(void* w, long i)
    {
        byte* block = (byte*)w + (i >> 5) * NarrowMatrix.MxBlockBytes;
        int code = ((sbyte*)block)[1 + (i & 31)];
        return BitConverter.Int32BitsToSingle((code << TE.Shift) & TE.Mask) * Factor(block[0]);
    }

    /// <summary>A row (whole blocks), 8 lanes at a time where AVX2 runs: the path <see cref="MatMulF32"/> takes without
    /// 512-bit vectors.</summary>
    public static void Widen(void* w, long i, Span<float> row)
    {
        if (!Avx2.IsSupported || (i & 31) != 0 || (row.Length & 31) != 0)
        {
            for (int j = 0; j < row.Length; j++) row[j] = At(w, i + j);
            return;
        }
        var mask = Vector256.Create(TE.Mask);
        fixed (float* dst = row)
            for (int j = 0; j < row.Length; j += 32)
            {
                byte* block = (byte*)w + ((i + j) >> 5) * NarrowMatrix.MxBlockBytes;
                var factor = Vector256.Create(Factor(block[0]));
                sbyte* codes = (sbyte*)block + 1;
                for (int c = 0; c < 32; c += 8)
                    ((Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(codes + c), TE.Shift) & mask).AsSingle() * factor).Store(dst + j + c);
            }
    }

    public static void Prefetch(void* w, long i) => Sse.Prefetch0((byte*)w + (i >> 5) * NarrowMatrix.MxBlockBytes + (i & 31));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Factor(byte scale) => BitConverter.Int32BitsToSingle((scale + TE.Rebias) << 23);
}

/// <summary>
/// FP8 blocks with a float32 scale s (<see cref="NarrowMatrix.ScaledBlockBytes"/> bytes: s, then 32 elements): as
/// <see cref="MxFp8Elements{TE}"/>, an element's bits shifted into a float are its value × 2^−Rebias exactly, so one
/// multiply by s·2^Rebias (exact: a power of two) gives element × s rounded once, as the format's dequantizer
/// computes it. Scales that overflow once rebiased, and NaN elements, are refused at load by
/// <see cref="NarrowMatrix.TryCreateScaled"/>.
/// </summary>
internal unsafe struct ScaledFp8Elements<TE> : IWeightElements where TE : struct, IFp8Bits
{
    public static int BytesPer32 => NarrowMatrix.ScaledBlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi)
    {
        if (!Avx512F.IsSupported) { lo = Load16(w, i); hi = Load16(w, i + 16); return; }
        byte* block = (byte*)w + (i >> 5) * NarrowMatrix.ScaledBlockBytes;
        var factor = Vector512.Create(Factor(block));
        var mask = Vector512.Create(TE.Mask);
        lo = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 4)), TE.Shift) & mask).AsSingle() * factor;
        hi = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 20)), TE.Shift) & mask).AsSingle() * factor;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i)
    {
        byte* block = (byte*)w + (i >> 5) * NarrowMatrix.ScaledBlockBytes;
        if (!Avx512F.IsSupported)
        {
            if (!Avx2.IsSupported)
                return Vector512.Create(At(w, i), At(w, i + 1), At(w, i + 2), At(w, i + 3), At(w, i + 4), At(w, i + 5), At(w, i + 6), At(w, i + 7),
                    At(w, i + 8), At(w, i + 9), At(w, i + 10), At(w, i + 11), At(w, i + 12), At(w, i + 13), At(w, i + 14), At(w, i + 15));
            // Two 8-lane halves: sign-extend the bytes, shift and mask them into floats, one multiply each.
            sbyte* codes = (sbyte*)block + 4 + (i & 31);
            var f = Vector256.Create(Factor(block));
            var m = Vector256.Create(TE.Mask);
            var a = (Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(codes), TE.Shift) & m).AsSingle() * f;
            var b = (Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(codes + 8), TE.Shift) & m).AsSingle() * f;
            return Vector512.Create(a, b);
        }
        var c = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 4 + (i & 31)));
        return (Vector512.ShiftLeft(c, TE.Shift) & Vector512.Create(TE.Mask)).AsSingle() * Vector512.Create(Factor(block));
    }

    public static float At(void* w, long i)
    {
        byte* block = (byte*)w + (i >> 5) * NarrowMatrix.ScaledBlockBytes;
        int code = ((sbyte*)block)[4 + (i & 31)];
        return BitConverter.Int32BitsToSingle((code << TE.Shift) & TE.Mask) * Factor(block);
    }

    /// <summary>A row (whole blocks: <paramref name="i"/> and the length multiples of 32), 8 lanes at a time where
    /// AVX2 runs: the path <see cref="MatMulF32"/> takes without 512-bit vectors.</summary>
    public static void Widen(void* w, long i, Span<float> row)
    {
        if (!Avx2.IsSupported || (i & 31) != 0 || (row.Length & 31) != 0)
        {
            for (int j = 0; j < row.Length; j++) row[j] = At(w, i + j);
            return;
        }
        var mask = Vector256.Create(TE.Mask);
        fixed (float* dst = row)
            for (int j = 0; j < row.Length; j += 32)
            {
                byte* block = (byte*)w + ((i + j) >> 5) * NarrowMatrix.ScaledBlockBytes;
                var factor = Vector256.Create(Factor(block));
                sbyte* codes = (sbyte*)block + 4;
                for (int c = 0; c < 32; c += 8)
                    ((Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(codes + c), TE.Shift) & mask).AsSingle() * factor).Store(dst + j + c);
            }
    }

    public static void Prefetch(void* w, long i) => Sse.Prefetch0((byte*)w + (i >> 5) * NarrowMatrix.ScaledBlockBytes + 4 + (i & 31));

    /// <summary>s·2^Rebias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Factor(byte* block) => *(float*)block * BitConverter.Int32BitsToSingle((127 + TE.Rebias) << 23);
}
