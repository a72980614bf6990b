using System.Runtime.Intrinsics.X86;
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
    /// <summary>Name of the path <paramref name="mode"/> uses for <paramref name="type"/> on this CPU, for reports.</summary>
    public static string Describe(TensorType type, KernelMode mode)
    {
        if (mode == KernelMode.Float32 || PackedKind.For(type) is not { } kind) return "f32 (dequantized at load)";
        return Describe(kind, mode);
    }

    internal static string Describe(PackedKind kind, KernelMode mode)
    {
        if (mode == KernelMode.Reference) return "int8 scalar reference";
        return Select(kind, rawExponents: false, out string name) is null ? "int8 scalar reference" : name;
    }

    /// <summary>The fastest kernel for <paramref name="kind"/> on this CPU (for MX kinds, one that reads the matrix's
    /// E8M0 bytes raw or biased: <see cref="PackedMatrix.RawExponents"/>); null where only the reference runs.</summary>
    internal static GroupKernel? Select(PackedKind kind, bool rawExponents, out string name)
    {
        // Initialised before any kernel is compiled, so that the JIT folds the kernels' test of it.
        _ = PrefetchLevel.IntoL1;
        if (AvxVnni.IsSupported)
        {
            // Paired kinds run 16-row tiles where AVX-512's 32 registers hold them (PackedKernel.SixteenRowTile).
            name = kind.PairedGroups && Avx512F.VL.IsSupported ? "avx-vnni int8, 16-row tiles (paired 8-row groups)" : "avx-vnni int8, 8-row interleaved";
            return For<VnniDot>(kind, rawExponents);
        }
        if (Avx2.IsSupported)
        {
            name = kind.PairedGroups && Avx512F.VL.IsSupported ? "avx2 int8, 16-row tiles (paired 8-row groups)" : "avx2 int8, 8-row interleaved";
            if (MaxCode(kind) > Avx2Dot.MaxCode) name += kind.CodeBits == 8 && kind.Layout == SubScaleLayout.None && kind.Lut is null && Avx512F.VL.IsSupported && Avx512BW.IsSupported ? ", signed codes (prefill: int16 products)" : ", signed codes";
            return ForAvx2(kind, rawExponents);
        }
        name = "int8 scalar reference";
        return null;
    }

    /// <summary>The AVX2 kernel of <paramref name="kind"/>: codes past vpmaddubsw's exact range (Q8_0, IQ4_NL, mxint8,
    /// int8) take <see cref="Avx2SignedDot"/>'s sign trick.</summary>
    internal static GroupKernel ForAvx2(PackedKind kind, bool rawExponents = false) =>
        MaxCode(kind) > Avx2Dot.MaxCode ? For<Avx2SignedDot>(kind, rawExponents) : For<Avx2Dot>(kind, rawExponents);

    /// <summary>The largest code the kind stores (Q8_0 stores q+128; int formats up to 2^k − 1, doubled for 1-bit signs).</summary>
    internal static int MaxCode(PackedKind kind) => kind.Lut is { } lut ? Math.Max(lut.Max(), kind.LutHigh?.Max() ?? 0) : kind.Offset == -128 ? 255 : kind.Int is { } f ? (f.Symmetric && f.Bits == 1 ? 2 : (1 << f.Bits) - 1) : (1 << kind.CodeBits) - 1;

    /// <summary>The kernel of <paramref name="kind"/> with dot product <typeparamref name="TD"/> (tests call each path).</summary>
    internal static unsafe GroupKernel For<TD>(PackedKind kind, bool rawExponents = false) where TD : struct, IDotProduct =>
        kind.Int is not null ? ForInt<TD>(kind) : kind.TableFormat is not null ? ForTable<TD>(kind, rawExponents) : kind.Type switch
    {
        TensorType.Q8_0 => PackedKernel<Q8_0Traits, TD>.Group,
        TensorType.Q4_0 => PackedKernel<Q4_0Traits, TD>.Group,
        TensorType.Q4_1 => PackedKernel<Q4_1Traits, TD>.Group,
        TensorType.Q5_0 => PackedKernel<Q5_0Traits, TD>.Group,
        TensorType.Q5_1 => PackedKernel<Q5_1Traits, TD>.Group,
        TensorType.Q4_K => PackedKernel<Q4_KTraits, TD>.Group,
        TensorType.Q5_K => PackedKernel<Q5_KTraits, TD>.Group,
        TensorType.Q6_K => PackedKernel<Q6_KTraits, TD>.Group,
        TensorType.Q3_K => PackedKernel<Q3_KTraits, TD>.Group,
        TensorType.Q2_K => PackedKernel<Q2_KTraits, TD>.Group,
        TensorType.TQ2_0 or TensorType.TQ1_0 => PackedKernel<TernaryTraits, TD>.Group,
        TensorType.IQ4_NL => PackedKernel<Iq4NlTraits, TD>.Group,
        TensorType.MXFP4 => PackedKernel<Mxfp4Traits, TD>.Group,
        _ => throw new NotSupportedException($"no integer kernel for {kind.Type}"),
    };

    private static unsafe GroupKernel ForInt<TD>(PackedKind kind) where TD : struct, IDotProduct => (kind.CodeBits, kind.SuperBlock) switch
    {
        (2, 32) => PackedKernel<IntTraits<C2, C32>, TD>.Group, (2, 64) => PackedKernel<IntTraits<C2, C64>, TD>.Group,
        (2, 128) => PackedKernel<IntTraits<C2, C128>, TD>.Group, (2, 256) => PackedKernel<IntTraits<C2, C256>, TD>.Group,
        (3, 32) => PackedKernel<IntTraits<C3, C32>, TD>.Group, (3, 64) => PackedKernel<IntTraits<C3, C64>, TD>.Group,
        (3, 128) => PackedKernel<IntTraits<C3, C128>, TD>.Group, (3, 256) => PackedKernel<IntTraits<C3, C256>, TD>.Group,
        (5, 32) => PackedKernel<IntTraits<C5, C32>, TD>.Group, (5, 64) => PackedKernel<IntTraits<C5, C64>, TD>.Group,
        (5, 128) => PackedKernel<IntTraits<C5, C128>, TD>.Group, (5, 256) => PackedKernel<IntTraits<C5, C256>, TD>.Group,
        (6, 32) => PackedKernel<IntTraits<C6, C32>, TD>.Group, (6, 64) => PackedKernel<IntTraits<C6, C64>, TD>.Group,
        (6, 128) => PackedKernel<IntTraits<C6, C128>, TD>.Group, (6, 256) => PackedKernel<IntTraits<C6, C256>, TD>.Group,
        (4, 32) => PackedKernel<IntTraits<C4, C32>, TD>.Group, (4, 64) => PackedKernel<IntTraits<C4, C64>, TD>.Group,
        (4, 128) => PackedKernel<IntTraits<C4, C128>, TD>.Group, (4, 256) => PackedKernel<IntTraits<C4, C256>, TD>.Group,
        (8, 32) => PackedKernel<IntTraits<C8, C32>, TD>.Group, (8, 64) => PackedKernel<IntTraits<C8, C64>, TD>.Group,
        (8, 128) => PackedKernel<IntTraits<C8, C128>, TD>.Group, (8, 256) => PackedKernel<IntTraits<C8, C256>, TD>.Group,
        _ => throw new NotSupportedException($"no integer kernel for {kind}"),
    };

    private static GroupKernel ForTable<TD>(PackedKind kind, bool raw) where TD : struct, IDotProduct => (kind.Book, kind.E8M0) switch
    {
        (null, _) => raw ? ForGroup<TD, MxInt8Of<C1>>(kind.SuperBlock) : ForGroup<TD, MxInt8Of<C0>>(kind.SuperBlock),
        (var b, false) when b == Codebook.Nf4 => ForGroup<TD, BookOf<Nf4Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.BnbFp4 => ForGroup<TD, BookOf<BnbFp4Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E2M1 => ForGroup<TD, BookOf<E2M1Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E2M3 => ForGroup<TD, BookOf<E2M3Book>>(kind.SuperBlock),
        (var b, false) when b == Codebook.E3M2 => ForGroup<TD, BookOf<E3M2Book>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E2M1 => raw ? ForGroup<TD, MxBookOf<E2M1Book, C1>>(kind.SuperBlock) : ForGroup<TD, MxBookOf<E2M1Book, C0>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E2M3 => raw ? ForGroup<TD, MxBookOf<E2M3Book, C1>>(kind.SuperBlock) : ForGroup<TD, MxBookOf<E2M3Book, C0>>(kind.SuperBlock),
        (var b, true) when b == Codebook.E3M2 => raw ? ForGroup<TD, MxBookOf<E3M2Book, C1>>(kind.SuperBlock) : ForGroup<TD, MxBookOf<E3M2Book, C0>>(kind.SuperBlock),
        _ => throw new NotSupportedException($"no integer kernel for {kind}"),
    };

    private static GroupKernel ForGroup<TD, TF>(int group) where TD : struct, IDotProduct where TF : IKernelFamily => group switch
    {
        32 => TF.Kernel<TD, C32>(), 64 => TF.Kernel<TD, C64>(), 128 => TF.Kernel<TD, C128>(), 256 => TF.Kernel<TD, C256>(),
        _ => throw new NotSupportedException($"no integer kernel for groups of {group}"),
    };

    /// <summary>A family of kinds that differ only in group size, so one switch picks the group's kernel.</summary>
    private interface IKernelFamily { static abstract GroupKernel Kernel<TD, TG>() where TD : struct, IDotProduct where TG : struct, IConstant; }
    /// <summary>MX int8 blocks; <typeparamref name="TRaw"/> 1: E8M0 bytes kept raw (<see cref="RawExponentsOf{TK}"/>).</summary>
    private struct MxInt8Of<TRaw> : IKernelFamily where TRaw : struct, IConstant
    {
        public static unsafe GroupKernel Kernel<TD, TG>() where TD : struct, IDotProduct where TG : struct, IConstant =>
            TRaw.Value == 1 ? PackedKernel<RawExponentsOf<MxInt8Traits<TG>>, TD>.Group : PackedKernel<MxInt8Traits<TG>, TD>.Group;
    }
    private struct BookOf<TB> : IKernelFamily where TB : struct, IBook
    {
        public static unsafe GroupKernel Kernel<TD, TG>() where TD : struct, IDotProduct where TG : struct, IConstant => PackedKernel<CodebookTraits<TB, TG>, TD>.Group;
    }
    private struct MxBookOf<TB, TRaw> : IKernelFamily where TB : struct, IBook where TRaw : struct, IConstant
    {
        public static unsafe GroupKernel Kernel<TD, TG>() where TD : struct, IDotProduct where TG : struct, IConstant =>
            TRaw.Value == 1 ? PackedKernel<RawExponentsOf<MxCodebookTraits<TB, TG>>, TD>.Group : PackedKernel<MxCodebookTraits<TB, TG>, TD>.Group;
    }
}
