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
/// A kernel for one group of 8 rows and 1 to 4 <paramref name="tokens"/> (token u's activations follow token u−1's;
/// its outputs start <paramref name="yStride"/> floats after token u−1's).
/// </summary>
internal unsafe delegate void GroupKernel(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int tokens, int yStride);

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

    private const string TilesProperty = nameof(PackedKernel<Q4_0Traits, VnniDot>.Tiles);

    /// <summary>The AVX2 kernel of <paramref name="kind"/>: codes past vpmaddubsw's exact range (Q8_0, IQ4_NL, mxint8,
    /// int8) take <see cref="Avx2SignedDot"/>'s sign trick.</summary>
    internal static GroupKernel ForAvx2(PackedKind kind, bool rawExponents = false) =>
        MaxCode(kind) > Avx2Dot.MaxCode ? For<Avx2SignedDot>(kind, rawExponents) : For<Avx2Dot>(kind, rawExponents);

    /// <summary>The largest code the kind stores (Q8_0 stores q+128; int formats up to 2^k − 1, doubled for 1-bit signs).</summary>
    internal static int MaxCode(PackedKind kind) => kind.Lut is { } lut ? Math.Max(lut.Max(), kind.LutHigh?.Max() ?? 0) : kind.Offset == -128 ? 255 : kind.Int is { } f ? (f.Symmetric && f.Bits == 1 ? 2 : (1 << f.Bits) - 1) : (1 << kind.CodeBits) - 1;

    /// <summary>The kernel of <paramref name="kind"/> with dot product <typeparamref name="TD"/> (tests call each path).</summary>
    internal static GroupKernel For<TD>(PackedKind kind, bool rawExponents = false) where TD : struct, IDotProduct =>
        Resolve<X86Kernels<TD>>(kind, rawExponents);

    /// <summary>The 128-bit kernel of <paramref name="kind"/> (<see cref="PortableKernel{TK, TD}"/>) with dot product
    /// <typeparamref name="TD"/>: ARM64's sdot, or the portable one every CPU runs (tests call both where they can).</summary>
    internal static GroupKernel ForPortable<TD>(PackedKind kind, bool rawExponents = false) where TD : struct, IDot128 =>
        Resolve<PortableKernels<TD>>(kind, rawExponents);

    /// <summary>The kernel of class <typeparamref name="TC"/> specialised for <paramref name="kind"/>'s traits.</summary>
    private static GroupKernel Resolve<TC>(PackedKind kind, bool rawExponents) where TC : IKernelClass =>
        kind.Int is not null ? ForInt<TC>(kind) : kind.TableFormat is not null ? ForTable<TC>(kind, rawExponents) : kind.Type switch
    {
        TensorType.Q8_0 => TC.Of<Q8_0Traits>(),
        TensorType.Q4_0 => TC.Of<Q4_0Traits>(),
        TensorType.Q4_1 => TC.Of<Q4_1Traits>(),
        TensorType.Q5_0 => TC.Of<Q5_0Traits>(),
        TensorType.Q5_1 => TC.Of<Q5_1Traits>(),
        TensorType.Q4_K => TC.Of<Q4_KTraits>(),
        TensorType.Q5_K => TC.Of<Q5_KTraits>(),
        TensorType.Q6_K => TC.Of<Q6_KTraits>(),
        TensorType.Q3_K => TC.Of<Q3_KTraits>(),
        TensorType.Q2_K => TC.Of<Q2_KTraits>(),
        TensorType.TQ2_0 or TensorType.TQ1_0 => TC.Of<TernaryTraits>(),
        TensorType.IQ4_NL => TC.Of<Iq4NlTraits>(),
        TensorType.MXFP4 => TC.Of<Mxfp4Traits>(),
        _ => throw new NotSupportedException($"no integer kernel for {kind.Type}"),
    };

    private static GroupKernel ForInt<TC>(PackedKind kind) where TC : IKernelClass => (kind.CodeBits, kind.SuperBlock) switch
    {
        (2, 32) => TC.Of<IntTraits<C2, C32>>(), (2, 64) => TC.Of<IntTraits<C2, C64>>(),
        (2, 128) => TC.Of<IntTraits<C2, C128>>(), (2, 256) => TC.Of<IntTraits<C2, C256>>(),
        (3, 32) => TC.Of<IntTraits<C3, C32>>(), (3, 64) => TC.Of<IntTraits<C3, C64>>(),
        (3, 128) => TC.Of<IntTraits<C3, C128>>(), (3, 256) => TC.Of<IntTraits<C3, C256>>(),
        (5, 32) => TC.Of<IntTraits<C5, C32>>(), (5, 64) => TC.Of<IntTraits<C5, C64>>(),
        (5, 128) => TC.Of<IntTraits<C5, C128>>(), (5, 256) => TC.Of<IntTraits<C5, C256>>(),
        (6, 32) => TC.Of<IntTraits<C6, C32>>(), (6, 64) => TC.Of<IntTraits<C6, C64>>(),
        (6, 128) => TC.Of<IntTraits<C6, C128>>(), (6, 256) => TC.Of<IntTraits<C6, C256>>(),
        (4, 32) => TC.Of<IntTraits<C4, C32>>(), (4, 64) => TC.Of<IntTraits<C4, C64>>(),
        (4, 128) => TC.Of<IntTraits<C4, C128>>(), (4, 256) => TC.Of<IntTraits<C4, C256>>(),
        (8, 32) => TC.Of<IntTraits<C8, C32>>(), (8, 64) => TC.Of<IntTraits<C8, C64>>(),
        (8, 128) => TC.Of<IntTraits<C8, C128>>(), (8, 256) => TC.Of<IntTraits<C8, C256>>(),
        _ => throw new NotSupportedException($"no integer kernel for {kind}"),
    };

    private static GroupKernel ForTable<TC>(PackedKind kind, bool raw) where TC : IKernelClass => (kind.Book, kind.E8M0) switch
    {
        (null, _) => raw ? ForGroup<TC, MxInt8Of<C1>>(kind.SuperBlock) : ForGroup<TC, MxInt8Of<C0>>(kind.SuperBlock),
        (var b, false) when b == Codebook.Nf4 => ForGroup<TC, BookOf<Nf4Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.BnbFp4 => ForGroup<TC, BookOf<BnbFp4Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E2M1 => ForGroup<TC, BookOf<E2M1Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E2M3 => ForGroup<TC, BookOf<E2M3Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E3M2 => ForGroup<TC, BookOf<E3M2Book>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E2M1 => raw ? ForGroup<TC, MxBookOf<E2M1Book, C1>>(kind.SuperBlock) : ForGroup<TC, MxBookOf<E2M1Book, C0>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E2M3 => raw ? ForGroup<TC, MxBookOf<E2M3Book, C1>>(kind.SuperBlock) : ForGroup<TC, MxBookOf<E2M3Book, C0>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E3M2 => raw ? ForGroup<TC, MxBookOf<E3M2Book, C1>>(kind.SuperBlock) : ForGroup<TC, MxBookOf<E3M2Book, C0>>(kind.SuperBlock),
        _ => throw new NotSupportedException($"no integer kernel for {kind}"),
    };

    private static GroupKernel ForGroup<TC, TF>(int group) where TC : IKernelClass where TF : IKernelFamily => group switch
    {
        32 => TF.Kernel<TC, C32>(), 64 => TF.Kernel<TC, C64>(), 128 => TF.Kernel<TC, C128>(), 256 => TF.Kernel<TC, C256>(),
        _ => throw new NotSupportedException($"no integer kernel for groups of {group}"),
    };

    /// <summary>A kernel implementation, generic over the kind's traits: one source per instruction set, one switch
    /// (above) from kinds to traits for all of them.</summary>
    private interface IKernelClass { static abstract GroupKernel Of<TK>() where TK : struct, IKindTraits; }
    private struct X86Kernels<TD> : IKernelClass where TD : struct, IDotProduct
    {
        public static unsafe GroupKernel Of<TK>() where TK : struct, IKindTraits => PackedKernel<TK, TD>.Group;
    }
    private struct PortableKernels<TD> : IKernelClass where TD : struct, IDot128
    {
        public static unsafe GroupKernel Of<TK>() where TK : struct, IKindTraits => PortableKernel<TK, TD>.Group;
    }

    /// <summary>A family of kinds that differ only in group size, so one switch picks the group's kernel.</summary>
    private interface IKernelFamily { static abstract GroupKernel Kernel<TC, TG>() where TC : IKernelClass where TG : struct, IConstant; }
    /// <summary>MX int8 blocks; <typeparamref name="TRaw"/> 1: E8M0 bytes kept raw (<see cref="RawExponentsOf{TK}"/>).</summary>
    private struct MxInt8Of<TRaw> : IKernelFamily where TRaw : struct, IConstant
    {
        public static GroupKernel Kernel<TC, TG>() where TC : IKernelClass where TG : struct, IConstant =>
            TRaw.Value == 1 ? TC.Of<RawExponentsOf<MxInt8Traits<TG>>>() : TC.Of<MxInt8Traits<TG>>();
    }
    private struct BookOf<TB> : IKernelFamily where TB : struct, IBook
    {
        public static GroupKernel Kernel<TC, TG>() where TC : IKernelClass where TG : struct, IConstant => TC.Of<CodebookTraits<TB, TG>>();
    }
    private struct MxBookOf<TB, TRaw> : IKernelFamily where TB : struct, IBook where TRaw : struct, IConstant
    {
        public static GroupKernel Kernel<TC, TG>() where TC : IKernelClass where TG : struct, IConstant =>
            TRaw.Value == 1 ? TC.Of<RawExponentsOf<MxCodebookTraits<TB, TG>>>() : TC.Of<MxCodebookTraits<TB, TG>>();
    }
}
