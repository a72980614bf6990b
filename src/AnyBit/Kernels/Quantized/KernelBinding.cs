namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A format's binding to the kernels: resolves, for any kernel implementation (one per instruction set), the kernel
/// specialised for the format's compile-time traits. Each format states its binding once, beside its layout.
/// </summary>
internal abstract class KernelBinding
{
    /// <summary>The kernel of class <typeparamref name="TC"/> for this binding; for MX kinds, the one that reads
    /// E8M0 bytes raw where <paramref name="rawExponents"/> (<see cref="PackedMatrix.RawExponents"/>).</summary>
    public abstract GroupKernel Resolve<TC>(bool rawExponents) where TC : IKernelClass;
}

/// <summary>The binding of a kind whose kernel is specialised for <typeparamref name="TK"/> alone.</summary>
internal sealed class KernelBinding<TK> : KernelBinding where TK : struct, IKindTraits
{
    public override GroupKernel Resolve<TC>(bool rawExponents) => rawExponents && TK.E8M0 ? TC.Of<RawExponentsOf<TK>>() : TC.Of<TK>();
}

/// <summary>A kernel implementation, generic over the kind's traits: one source per instruction set.</summary>
internal interface IKernelClass { static abstract GroupKernel Of<TK>() where TK : struct, IKindTraits; }

/// <summary>The x86 kernels (<see cref="PackedKernel{TK, TD}"/>) with dot product <typeparamref name="TD"/>.</summary>
internal struct X86Kernels<TD> : IKernelClass where TD : struct, IDotProduct
{
    public static unsafe GroupKernel Of<TK>() where TK : struct, IKindTraits => PackedKernel<TK, TD>.Group;
}

/// <summary>The 128-bit kernels (<see cref="PortableKernel{TK, TD}"/>) with dot product <typeparamref name="TD"/>.</summary>
internal struct PortableKernels<TD> : IKernelClass where TD : struct, IDot128
{
    public static unsafe GroupKernel Of<TK>() where TK : struct, IKindTraits => PortableKernel<TK, TD>.Group;
}

/// <summary>Group sizes the kernels are compiled for (the AnyBit families' super-blocks).</summary>
internal static class KernelGroups
{
    public static readonly int[] Sizes = [32, 64, 128, 256];

    /// <summary>The binding of a family whose traits differ only in group size: one switch over the compiled sizes.</summary>
    public static KernelBinding For<TF>(int group) where TF : struct, IGroupFamily => group switch
    {
        32 => TF.Binding<C32>(), 64 => TF.Binding<C64>(), 128 => TF.Binding<C128>(), 256 => TF.Binding<C256>(),
        _ => throw new NotSupportedException($"no integer kernel for groups of {group}"),
    };
}

/// <summary>A family of kinds that differ only in group size (<see cref="KernelGroups.For{TF}"/>).</summary>
internal interface IGroupFamily { static abstract KernelBinding Binding<TG>() where TG : struct, IConstant; }
