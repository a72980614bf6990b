using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>acc + Σ over each group of 4 bytes of u8 × s8, per int32 lane (x86's vpdpbusd).</summary>
internal interface IDotProduct
{
    static abstract Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> unsigned, Vector256<sbyte> signed);
    /// <summary>
    /// acc + Σ over each group of 4 bytes of (u8 − 128) × s8, for codes past <see cref="MaxCode"/> (the kernel adds
    /// 128·Σx back through its offset term: see PackedKernel.BiasedCodes). |s| ≤ 127, as the activations are.
    /// </summary>
    static abstract Vector256<int> AccumulateBiased(Vector256<int> acc, Vector256<byte> unsigned, Vector256<sbyte> signed);
    /// <summary>Largest unsigned code for which <see cref="Accumulate"/> is exact.</summary>
    static abstract int MaxCode { get; }
    /// <summary>64-entry tables may be read with AVX-512 VBMI's vpermi2b (else four vpshufb and blends).</summary>
    static abstract bool Vbmi { get; }
}

/// <summary>AVX-VNNI's vpdpbusd: one instruction, no intermediate saturation.</summary>
internal struct VnniDot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(acc, u, s);
    // Never taken by the kernels (every code is within MaxCode); the AVX2 sequence, for completeness.
    public static Vector256<int> AccumulateBiased(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => Avx2Dot.AccumulateBiased(acc, u, s);
    public static int MaxCode => 255;
    public static bool Vbmi => Avx512Vbmi.VL.IsSupported;
}

/// <summary>
/// AVX2 without VNNI: vpmaddubsw (pairs into saturating int16) then vpmaddwd with ones. Exact while a pair's sum
/// fits int16, i.e. codes up to 128 against |x| ≤ 127; Q8_0's biased codes (up to 255) do not qualify and take
/// <see cref="AccumulateBiased"/> instead.
/// </summary>
internal struct Avx2Dot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) =>
        acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
    /// <summary>
    /// w = u − 128 as a signed byte, then vpmaddubsw(|w|, sign(x, w)): |w| ≤ 128 unsigned (−128 too) against
    /// |x·sign(w)| ≤ 127, so a pair sums to at most 2·128·127 = 32512 and never saturates — exact for every code.
    /// Three instructions more than <see cref="Accumulate"/> (llama.cpp's AVX2 q8_0 dot product does the same).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> AccumulateBiased(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s)
    {
        var w = (u ^ Vector256.Create((byte)0x80)).AsSByte();
        return acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(s, w)), Vector256<short>.One);
    }
    public static int MaxCode => 128;
    // Kept on the vpshufb lookups, so that the tests exercise them on machines that also have VBMI.
    public static bool Vbmi => false;
}
