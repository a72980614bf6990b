using System.Runtime.CompilerServices;

namespace AnyBit.Kernels.Quantized;

/// <summary>Where a kind's bytes sit in a <see cref="PackedMatrix"/> group, as JIT-time constants for every kernel
/// that reads them (<see cref="PackedKernel{TK, TD}"/>, <see cref="PortableKernel{TK, TD}"/>).</summary>
internal static class GroupLayout<TK> where TK : struct, IKindTraits
{
    /// <summary>The layout of <see cref="PackedKind.PairedGroups"/>: two groups' super-blocks alternate in memory.</summary>
    public static bool PairedGroups { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TK.Layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint ? !TK.HasMins && TK.Bits != 2 : true; }

    /// <summary>One super-block of 8 rows: the codes, then the scales (and mins, sub-scales, zero points).</summary>
    public static int BlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 32 * TK.Bits * (TK.SuperBlock / 32) + PackedKind.ParamBytesOf(TK.HasMins, TK.Layout, TK.E8M0, TK.HalfScale); }

    /// <summary>From one super-block of a group to its next: two blocks where groups are stored in pairs.</summary>
    public static int BlockStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => PairedGroups ? 2 * BlockBytes : BlockBytes; }
}
