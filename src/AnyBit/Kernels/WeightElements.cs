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

/// <summary>The header of an FP8 block of 32 elements: its size, where the elements start, and the scale.</summary>
internal unsafe interface IFp8Block
{
    /// <summary>Bytes of a block: the scale, then 32 one-byte elements.</summary>
    static abstract int Bytes { get; }
    /// <summary>Offset of the elements in a block.</summary>
    static abstract int Codes { get; }
    /// <summary>The block's scale times 2^<paramref name="rebias"/> (exact: a power of two).</summary>
    static abstract float Factor(byte* block, int rebias);
}

/// <summary>MXFP8: an E8M0 scale byte (<see cref="NarrowMatrix.MxBlockBytes"/> bytes a block).</summary>
internal unsafe struct E8M0Block : IFp8Block
{
    public static int Bytes => NarrowMatrix.MxBlockBytes;
    public static int Codes => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Factor(byte* block, int rebias) => BitConverter.Int32BitsToSingle((block[0] + rebias) << 23);
}

/// <summary>FP8 checkpoints' blocks: a float32 scale (<see cref="NarrowMatrix.ScaledBlockBytes"/> bytes a block).</summary>
internal unsafe struct Float32Block : IFp8Block
{
    public static int Bytes => NarrowMatrix.ScaledBlockBytes;
    public static int Codes => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Factor(byte* block, int rebias) => *(float*)block * BitConverter.Int32BitsToSingle((127 + rebias) << 23);
}

/// <summary>
/// FP8 blocks as stored (<typeparamref name="TB"/>: MXFP8's E8M0 scale, or a float32 scale, then 32 elements). An
/// element's bits, sign-extended and shifted, are a float32 whose exponent field is the element's (normals and
/// subnormals alike) — the element's value × 2^−Rebias, exactly — so one multiply by the scale × 2^Rebias, built
/// once per block, gives element × scale rounded once, as the format's dequantizer computes it. The scales and codes
/// for which that would not hold (NaNs, scales past float32's range once rebiased) are refused at load by
/// <see cref="NarrowMatrix.TryCreateMx"/> and <see cref="NarrowMatrix.TryCreateScaled"/>, which compare every value
/// with the dequantizer's.
/// </summary>
internal unsafe struct Fp8BlockElements<TE, TB> : IWeightElements where TE : struct, IFp8Bits where TB : struct, IFp8Block
{
    public static int BytesPer32 => TB.Bytes;

    /// <summary>A whole block: its scale read and turned into the factor once for both halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load32(void* w, long i, out Vector512<float> lo, out Vector512<float> hi)
    {
        if (!Avx512F.IsSupported) { lo = Load16(w, i); hi = Load16(w, i + 16); return; }
        byte* block = Block(w, i);
        var factor = Vector512.Create(TB.Factor(block, TE.Rebias));
        var mask = Vector512.Create(TE.Mask);
        lo = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + TB.Codes)), TE.Shift) & mask).AsSingle() * factor;
        hi = (Vector512.ShiftLeft(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + TB.Codes + 16)), TE.Shift) & mask).AsSingle() * factor;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(void* w, long i)
    {
        if (!Avx512F.IsSupported) return Vector512.Create(At(w, i), At(w, i + 1), At(w, i + 2), At(w, i + 3), At(w, i + 4), At(w, i + 5), At(w, i + 6), At(w, i + 7),
            At(w, i + 8), At(w, i + 9), At(w, i + 10), At(w, i + 11), At(w, i + 12), At(w, i + 13), At(w, i + 14), At(w, i + 15));
        byte* block = Block(w, i);
        var codes = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + TB.Codes + (i & 31)));
        return (Vector512.ShiftLeft(codes, TE.Shift) & Vector512.Create(TE.Mask)).AsSingle() * Vector512.Create(TB.Factor(block, TE.Rebias));
    }

    public static float At(void* w, long i)
    {
        byte* block = Block(w, i);
        int code = ((sbyte*)block)[TB.Codes + (i & 31)];
        return BitConverter.Int32BitsToSingle((code << TE.Shift) & TE.Mask) * TB.Factor(block, TE.Rebias);
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
                byte* block = Block(w, i + j);
                var factor = Vector256.Create(TB.Factor(block, TE.Rebias));
                sbyte* codes = (sbyte*)block + TB.Codes;
                for (int c = 0; c < 32; c += 8)
                    ((Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(codes + c), TE.Shift) & mask).AsSingle() * factor).Store(dst + j + c);
            }
    }

    public static void Prefetch(void* w, long i) => Sse.Prefetch0(Block(w, i) + TB.Codes + (i & 31));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Block(void* w, long i) => (byte*)w + (i >> 5) * TB.Bytes;
}
