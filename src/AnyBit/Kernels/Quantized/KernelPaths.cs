using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Reflection;
using AnyBit.IO;

namespace AnyBit.Kernels.Quantized;

/// <summary>Which implementation runs the quantized matrix products.</summary>
public enum KernelMode
{
    /// <summary>The fastest correct SIMD path the CPU offers (scalar reference where it offers none).</summary>
    Fast,
    /// <summary>The scalar integer reference kernels (slow; for checking the fast ones).</summary>
    Reference,
    /// <summary>No integer kernels: weights dequantized to float32 at load, float activations (the original path).</summary>
    Float32,
}

/// <summary>
/// A kernel for one group of 8 rows (or two adjacent ones) and 1 to <see cref="QuantizedMatMul.MaxTokensPerCall"/>
/// <paramref name="tokens"/> (token u's activations — codes, scales, Σ16 and <see cref="QuantizedActivations.LaneSums"/>
/// — follow token u−1's; its outputs start <paramref name="yStride"/> floats after token u−1's).
/// </summary>
internal unsafe delegate void GroupKernel(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, int* xLaneSums, float* y, int rows, int tokens, int yStride);

/// <summary>Chooses the kernel per weight kind from the CPU features detected at start-up.</summary>
public static class KernelPaths
{
    // The one decision of what multiplies a quantized matrix, made once when PackedMatrix loads it: LayoutFor before
    // repacking (the lookup-table layouts, or interleaved 8-row groups), Choose after it (the instruction-set path;
    // the tile strategy is the chosen kernel's own, PackedKernel.Tiles.cs). The matrix records the result
    // (PackedMatrix.Choice) and every report prints that record.

    /// <summary>
    /// The layout a matrix of <paramref name="kind"/> and <paramref name="columns"/> is held in: a lookup-table layout
    /// where <paramref name="requested"/> names one this CPU supports, or for <see cref="MatrixLayout.Auto"/> where it
    /// is preferred (<see cref="TernaryTableMatrix.Preferred"/>, then <see cref="BitSerialMatrix.Preferred"/>); else
    /// the interleaved 8-row groups every kind has.
    /// </summary>
    internal static MatrixLayout LayoutFor(PackedKind kind, int columns, MatrixLayout requested)
    {
        if (requested == MatrixLayout.Auto)
            requested = TernaryTableMatrix.Preferred(kind, columns) ? MatrixLayout.TernaryTable : BitSerialMatrix.Preferred(kind) ? MatrixLayout.BitSerial : MatrixLayout.Interleaved;
        return requested == MatrixLayout.BitSerial && BitSerialMatrix.Supports(kind) || requested == MatrixLayout.TernaryTable && TernaryTableMatrix.Supports(kind)
            ? requested : MatrixLayout.Interleaved;
    }

    /// <summary>What multiplies a matrix held in a lookup-table layout (<see cref="LayoutFor"/>): its own kernel.</summary>
    internal static KernelChoice ChooseLookup(ILookupTableMatrix table, MatrixLayout requested) =>
        new(table.Path, $"{table.TileRows}-row tiles", requested != MatrixLayout.Auto ? "layout requested"
            : table is TernaryTableMatrix ? "preferred without AVX-VNNI up to 2048 columns (TernaryTableMatrix.Preferred)"
            : "preferred for this format on this CPU (BitSerialMatrix.Preferred)");

    /// <summary>
    /// The fastest kernel for an interleaved matrix of <paramref name="kind"/> on this CPU (for MX kinds, one that reads
    /// the matrix's E8M0 bytes raw or biased: <see cref="PackedMatrix.RawExponents"/>), and what it is; a null kernel
    /// where only the scalar reference runs: no SIMD path, or block scales the SIMD kernels do not read
    /// (<paramref name="nonFiniteScales"/>: <see cref="PackedMatrix.HasNonFiniteScales"/>).
    /// </summary>
    internal static (GroupKernel? Kernel, KernelChoice Choice) Choose(PackedKind kind, bool rawExponents, bool nonFiniteScales)
    {
        if (nonFiniteScales) return (null, new KernelChoice(KernelChoice.Reference.Path, "", "non-finite block scales"));
        // Initialised before any kernel is compiled, so that the JIT folds the kernels' test of it.
        _ = PrefetchLevel.IntoL1;
        if (AvxVnni.IsSupported) return Chosen(For<VnniDot>(kind, rawExponents), "avx-vnni int8", "AVX-VNNI's vpdpbusd");
        if (Avx2.IsSupported) return Chosen(ForAvx2(kind, rawExponents), "avx2 int8", "AVX2 without AVX-VNNI");
        if (Dp.IsSupported) return Chosen(ForPortable<SdotDot>(kind, rawExponents), "arm64 sdot int8", "ARM64 with FEAT_DotProd");
        if (Vector128.IsHardwareAccelerated) return Chosen(ForPortable<Vector128Dot>(kind, rawExponents), "vector128 int8", "128-bit vectors without a dot-product instruction");
        return (null, new KernelChoice(KernelChoice.Reference.Path, "", "no SIMD path on this CPU"));
    }

    /// <summary>
    /// <paramref name="kernel"/> with its record: the tiles are what the kernel's own class reports
    /// (<c>PackedKernel.Tiles</c>, <c>PortableKernel.Tiles</c>), from the flags its dispatch folds, so the report
    /// cannot drift from what runs. (Read by reflection once per matrix: <see cref="Resolve{TC}"/> maps kinds to
    /// trait types and hands back only the kernel.)
    /// </summary>
    private static (GroupKernel, KernelChoice) Chosen(GroupKernel kernel, string path, string why)
    {
        var tiles = kernel.Method.DeclaringType!.GetProperty(TilesProperty, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)!;
        var (tile, reason) = ((string, string))tiles.GetValue(null)!;
        return (kernel, new KernelChoice(path, tile, $"{why}; {reason}"));
    }

    private const string TilesProperty = nameof(PackedKernel<Formats.Ggml.Q4_0.Kernel, VnniDot>.Tiles);

    /// <summary>The AVX2 kernel of <paramref name="kind"/>: codes past vpmaddubsw's exact range (Q8_0, IQ4_NL, mxint8,
    /// int8) take <see cref="Avx2SignedDot"/>'s sign trick.</summary>
    internal static GroupKernel ForAvx2(PackedKind kind, bool rawExponents = false) =>
        MaxCode(kind) > Avx2Dot.MaxCode ? For<Avx2SignedDot>(kind, rawExponents) : For<Avx2Dot>(kind, rawExponents);

    /// <summary>The largest code the kind stores (Q8_0 stores q+128; int formats up to 2^k − 1, doubled for 1-bit signs;
    /// the grid i-quants' biased bytes up to 127).</summary>
    internal static int MaxCode(PackedKind kind) => kind.Lut is { } lut ? Math.Max(lut.Max(), kind.LutHigh?.Max() ?? 0)
        : kind.StatedMaxCode > 0 ? kind.StatedMaxCode
        : kind.Offset == -128 ? 255 : kind.Int is { } f ? (f.Symmetric && f.Bits == 1 ? 2 : (1 << f.Bits) - 1) : (1 << kind.CodeBits) - 1;

    /// <summary>The kernel of <paramref name="kind"/> with dot product <typeparamref name="TD"/> (tests call each path).</summary>
    internal static GroupKernel For<TD>(PackedKind kind, bool rawExponents = false) where TD : struct, IDotProduct =>
        Resolve<X86Kernels<TD>>(kind, rawExponents);

    /// <summary>The 128-bit kernel of <paramref name="kind"/> (<see cref="PortableKernel{TK, TD}"/>) with dot product
    /// <typeparamref name="TD"/>: ARM64's sdot, or the portable one every CPU runs (tests call both where they can).</summary>
    internal static GroupKernel ForPortable<TD>(PackedKind kind, bool rawExponents = false) where TD : struct, IDot128 =>
        Resolve<PortableKernels<TD>>(kind, rawExponents);

    /// <summary>The kernel of class <typeparamref name="TC"/> specialised for <paramref name="kind"/>'s traits.</summary>
    private static GroupKernel Resolve<TC>(PackedKind kind, bool rawExponents) where TC : IKernelClass =>
        kind.Binding.Resolve<TC>(rawExponents);
}
