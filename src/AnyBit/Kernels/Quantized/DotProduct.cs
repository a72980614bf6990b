using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>acc + Σ over each group of 4 bytes of u8 × s8, per int32 lane (x86's vpdpbusd).</summary>
internal interface IDotProduct
{
    static abstract Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> unsigned, Vector256<sbyte> signed);
    /// <summary>Largest unsigned code for which the instruction sequence is exact.</summary>
    static abstract int MaxCode { get; }
    /// <summary>64-entry tables may be read with AVX-512 VBMI's vpermi2b (else four vpshufb and blends).</summary>
    static abstract bool Vbmi { get; }
}

/// <summary>AVX-VNNI's vpdpbusd: one instruction, no intermediate saturation.</summary>
internal struct VnniDot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(acc, u, s);
    public static int MaxCode => 255;
    public static bool Vbmi => Avx512Vbmi.VL.IsSupported;
}

/// <summary>
/// AVX2 without VNNI: vpmaddubsw (pairs into saturating int16) then vpmaddwd with ones. Exact while a pair's sum
/// fits int16, i.e. codes up to 128 against |x| ≤ 127; Q8_0's biased codes (up to 255) do not qualify.
/// </summary>
internal struct Avx2Dot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) =>
        acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
    public static int MaxCode => 128;
    // Kept on the vpshufb lookups, so that the tests exercise them on machines that also have VBMI.
    public static bool Vbmi => false;
}
