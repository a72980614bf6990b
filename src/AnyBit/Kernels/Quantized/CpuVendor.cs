using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The CPU's vendor, for the few kernel choices that the Intel and AMD machines measured opposite ways
/// (<see cref="PrefetchLevel"/>, <see cref="BitSerialMatrix.Preferred"/>), and for the 512-bit tiles measured only on
/// AMD: a feature flag cannot tell the vendors apart.
/// </summary>
internal static class CpuVendor
{
    /// <summary>CPUID leaf 0 spells "GenuineIntel" in ebx, edx, ecx as little-endian ASCII.</summary>
    public static readonly bool IsIntel = X86Base.IsSupported && X86Base.CpuId(0, 0) is (_, 0x756E6547, 0x6C65746E, 0x49656E69);
}
