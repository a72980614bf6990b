using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>acc + Σ over each group of 4 bytes of u8 × s8, per int32 lane (x86's vpdpbusd).</summary>
internal interface IDotProduct
{
    static abstract Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> unsigned, Vector256<sbyte> signed);
    /// <summary>
    /// What <see cref="Accumulate"/> takes off every code before multiplying: it computes Σ (u8 − CodeBias) × s8, and
    /// the kernel adds CodeBias·Σx back through the kind's offset term (PackedKernel.Offset). 0 for most.
    /// </summary>
    static abstract int CodeBias { get; }
    /// <summary>Largest unsigned code for which <see cref="Accumulate"/> is exact.</summary>
    static abstract int MaxCode { get; }
    /// <summary>64-entry tables may be read with AVX-512 VBMI's vpermi2b (else four vpshufb and blends).</summary>
    static abstract bool Vbmi { get; }
    /// <summary>
    /// <see cref="Accumulate"/> is two multiplies (vpmaddubsw, then vpmaddwd against ones): where the kernel knows
    /// that a run of products fits int16 (4-bit codes: 8 vectors of pairs of at most 2·15·127), it sums the first
    /// step's int16 pairs (<see cref="AccumulatePairs"/>) and widens them once (<see cref="WidenPairs"/>) — one
    /// vpmaddwd per run instead of per vector, on the ports that limit it.
    /// </summary>
    static abstract bool SumsPairs { get; }
    /// <summary>acc + the int16 pair sums of u8 × s8 (wrapping: exact only within the caller's bound).</summary>
    static abstract Vector256<short> AccumulatePairs(Vector256<short> acc, Vector256<byte> unsigned, Vector256<sbyte> signed);
    /// <summary>Each int32 lane's two int16 pair sums, added.</summary>
    static abstract Vector256<int> WidenPairs(Vector256<short> pairs);
    /// <summary>
    /// <see cref="Accumulate"/> is int16 pair products widened against ones (AVX2 without VNNI): a kernel may widen
    /// <see cref="Pairs"/> against a pair of sub-scales instead, the scaling for free (PackedKernel.Signed16Pairs).
    /// </summary>
    static abstract bool ProductPairs { get; }
    /// <summary>The int16 pair sums of (u8 − <see cref="CodeBias"/>) × s8 that <see cref="Accumulate"/> widens, exact
    /// for codes up to <see cref="MaxCode"/> (each pair at most 2·128·127); only where <see cref="ProductPairs"/>.</summary>
    static abstract Vector256<short> Pairs(Vector256<byte> unsigned, Vector256<sbyte> signed);
}

/// <summary>AVX-VNNI's vpdpbusd: one instruction, no intermediate saturation.</summary>
internal struct VnniDot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(acc, u, s);
    public static int CodeBias => 0;
    public static int MaxCode => 255;
    public static bool Vbmi => Avx512Vbmi.VL.IsSupported;
    public static bool SumsPairs => false;
    public static Vector256<short> AccumulatePairs(Vector256<short> acc, Vector256<byte> u, Vector256<sbyte> s) => Avx2Dot.AccumulatePairs(acc, u, s);
    public static Vector256<int> WidenPairs(Vector256<short> pairs) => Avx2Dot.WidenPairs(pairs);
    public static bool ProductPairs => false;
    public static Vector256<short> Pairs(Vector256<byte> u, Vector256<sbyte> s) => Avx2Dot.Pairs(u, s);
}

/// <summary>
/// AVX2 without VNNI: vpmaddubsw (pairs into saturating int16) then vpmaddwd with ones. Exact while a pair's sum
/// fits int16, i.e. codes up to 128 against |x| ≤ 127; Q8_0's biased codes (up to 255) do not qualify and take
/// <see cref="Avx2SignedDot"/> instead.
/// </summary>
internal struct Avx2Dot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) =>
        acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
    public static int MaxCode => 128;
    public static int CodeBias => 0;
    public static bool SumsPairs => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> AccumulatePairs(Vector256<short> acc, Vector256<byte> u, Vector256<sbyte> s) => acc + Avx2.MultiplyAddAdjacent(u, s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> WidenPairs(Vector256<short> pairs) => Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
    // Kept on the vpshufb lookups, so that the tests exercise them on machines that also have VBMI.
    public static bool Vbmi => false;
    public static bool ProductPairs => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> Pairs(Vector256<byte> u, Vector256<sbyte> s) => Avx2.MultiplyAddAdjacent(u, s);
}

/// <summary>
/// AVX2 without VNNI for codes up to 255 — q + 128 of Q8_0 and mxint8, IQ4_NL's table entries, 8-bit int codes:
/// w = u − 128 as a signed byte, then vpmaddubsw(|w|, sign(x, w)). |w| ≤ 128 unsigned (−128 too) against
/// |x·sign(w)| ≤ 127, so a pair sums to at most 2·128·127 = 32512 and never saturates: exact for every code. Three
/// instructions more than <see cref="Avx2Dot"/> (llama.cpp's AVX2 q8_0 dot product is the same idea). A type of its
/// own rather than a branch in the kernel, so that the kernels' call sites stay one inlined call (a generic wrapper
/// choosing between the two at every site exhausted the JIT's inlining budget: Q4_0 decode at half speed).
/// </summary>
internal struct Avx2SignedDot : IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Accumulate(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s)
    {
        var w = (u ^ Vector256.Create((byte)0x80)).AsSByte();
        return acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(s, w)), Vector256<short>.One);
    }
    public static bool ProductPairs => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> Pairs(Vector256<byte> u, Vector256<sbyte> s)
    {
        var w = (u ^ Vector256.Create((byte)0x80)).AsSByte();
        return Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(s, w));
    }
    public static int MaxCode => 255;
    public static int CodeBias => 128;
    public static bool Vbmi => false;
    public static bool SumsPairs => false; // a signed pair reaches 32512: one per int16
    public static Vector256<short> AccumulatePairs(Vector256<short> acc, Vector256<byte> u, Vector256<sbyte> s) => Avx2Dot.AccumulatePairs(acc, u, s);
    public static Vector256<int> WidenPairs(Vector256<short> pairs) => Avx2Dot.WidenPairs(pairs);
}
