using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// acc + Σ over each group of 4 bytes of w × x, both signed, per int32 lane: the dot product of
/// <see cref="PortableKernel{TK, TD}"/>. Signed × signed because that is what ARM64's sdot multiplies; the kernel
/// takes 128 off codes that do not fit a signed byte and adds 128·Σx back.
/// </summary>
internal interface IDot128
{
    static abstract Vector128<int> Accumulate(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x);
}

/// <summary>ARM64's sdot (FEAT_DotProd: every ARMv8.4 core, and Apple M1, Graviton 2, Ampere Altra, Cortex-A55/A76 on).</summary>
internal struct SdotDot : IDot128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Accumulate(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x) => Dp.DotProduct(acc, w, x);
}

/// <summary>
/// The same sums from portable vector operations: each byte of a lane sign-extended by a shift pair, four int32
/// multiplies. Several times sdot's work, but every CPU with 128-bit vectors runs it — ARM64 cores without the
/// dot-product extension, x86 without AVX2 — and the tests run it on every machine, so that all of
/// <see cref="PortableKernel{TK, TD}"/> but the sdot instruction itself is checked where CI runs.
/// </summary>
internal struct Vector128Dot : IDot128
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Accumulate(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x)
    {
        var a = w.AsInt32();
        var b = x.AsInt32();
        return acc
            + Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(a, 24), 24) * Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(b, 24), 24)
            + Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(a, 16), 24) * Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(b, 16), 24)
            + Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(a, 8), 24) * Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(b, 8), 24)
            + Vector128.ShiftRightArithmetic(a, 24) * Vector128.ShiftRightArithmetic(b, 24);
    }
}
