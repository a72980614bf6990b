namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Which cache the 16-row decodes prefetch their weights into, by CPU vendor — a choice that two machines
/// measured opposite ways. 2 threads, 5632×2048 matrices from memory, alternating in one process: on the Intel
/// Sapphire Rapids VM L1 instead of L2 took Q2_K +7 %, Q8_0 +7 %, Q3_K +6 %, NF4 +6 %, Q6_K +5 %, int4 +5 %, Q4_0
/// +4 %, Q4_K +4 %, MXFP6 +2 % (ahead in 9–12 of 12 rounds each); on the AMD EPYC VM L1 had cost Q4_K 2–10 %.
/// <see cref="KernelPaths.Select"/> reads it before any kernel is compiled, so the JIT folds the test away.
/// </summary>
internal static class PrefetchLevel
{
    public static readonly bool IntoL1 = CpuVendor.IsIntel;
}
