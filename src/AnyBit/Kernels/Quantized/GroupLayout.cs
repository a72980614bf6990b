using System.Runtime.CompilerServices;

namespace AnyBit.Kernels.Quantized;

/// <summary>Where a kind's groups sit in a <see cref="PackedMatrix"/>, stated once for the matrix (<see cref="PackedKind"/>)
/// and the kernels (<see cref="GroupLayout{TK}"/>, as JIT-time constants).</summary>
internal static class GroupLayout
{
    /// <summary>
    /// Row groups are stored in pairs, super-block by super-block (group 2i's block s, then group 2i+1's): the kinds
    /// whose decode takes 16 rows at once, so that it streams one run of memory rather than two. Those are the kinds
    /// without sub-scales or mins (Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4, the int formats, NF4/FP4, minifloat and MX books)
    /// and every K-quant. Not the 2-bit codes without sub-scales (TQ2_0/TQ1_0, int2), whose 8-row tile decodes faster,
    /// nor Q4_1/Q5_1 (see docs/performance.md#paired-groups), nor the signed scale per 32 of IQ4_XS, which has no
    /// 16-row decode. And only where the 16-row tiles exist (AVX-512VL's 32 registers): elsewhere every kernel takes
    /// one group at a time, and a group whose blocks alternate with its partner's read as a strided run decoded up to
    /// twice as slowly as its own run of memory (docs/performance.md#paired-groups). The kernels read it through
    /// <see cref="GroupLayout{TK}.PairedGroups"/>, the matrix through <see cref="PackedKind.PairedGroups"/>: one rule.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Paired(SubScaleLayout layout, bool hasMins, int bits) =>
        System.Runtime.Intrinsics.X86.Avx512F.VL.IsSupported
        && (layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint ? !hasMins && bits != 2 : layout != SubScaleLayout.Signed32);
}

/// <summary>Where a kind's bytes sit in a <see cref="PackedMatrix"/> group, as JIT-time constants for every kernel
/// that reads them (<see cref="PackedKernel{TK, TD}"/>, <see cref="PortableKernel{TK, TD}"/>).</summary>
internal static class GroupLayout<TK> where TK : struct, IKindTraits
{
    /// <summary><see cref="GroupLayout.Paired"/> for the kind: two groups' super-blocks alternate in memory.</summary>
    public static bool PairedGroups { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout.Paired(TK.Layout, TK.HasMins, TK.Bits); }

    /// <summary>One super-block of 8 rows: the codes, then the scales (and mins, sub-scales, zero points).</summary>
    public static int BlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 32 * TK.Bits * (TK.SuperBlock / 32) + PackedKind.ParamBytesOf(TK.HasMins, TK.Layout, TK.E8M0, TK.HalfScale); }

    /// <summary>From one super-block of a group to its next: two blocks where groups are stored in pairs.</summary>
    public static int BlockStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => PairedGroups ? 2 * BlockBytes : BlockBytes; }
}
