namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Which cache the 16-row decodes prefetch their weights into, by CPU vendor — a choice that two machines
/// measured opposite ways: on Intel, L1 was faster for every kind; on AMD, L1 cost Q4_K
/// (see docs/performance.md#prefetch).
/// <see cref="KernelPaths.Choose"/> reads it before any kernel is compiled, so the JIT folds the test away.
/// </summary>
internal static class PrefetchLevel
{
    public static readonly bool IntoL1 = CpuVendor.IsIntel;
}
