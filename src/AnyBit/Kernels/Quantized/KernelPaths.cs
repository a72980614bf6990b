using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
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
        if (Dp.IsSupported)
        {
            name = "arm64 sdot int8, 8-row interleaved (two 4-row halves)";
            return ForPortable<SdotDot>(kind, rawExponents);
        }
        if (Vector128.IsHardwareAccelerated)
        {
            name = "vector128 int8, 8-row interleaved (two 4-row halves)";
            return ForPortable<Vector128Dot>(kind, rawExponents);
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
