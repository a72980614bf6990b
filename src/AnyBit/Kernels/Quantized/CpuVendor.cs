using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The CPU's vendor, for the few kernel choices that the Intel and AMD machines measured opposite ways
/// (<see cref="PrefetchLevel"/>, <see cref="BitSerialMatrix.Preferred"/>): a feature flag cannot tell them apart.
/// </summary>
internal static class CpuVendor
{
    public static readonly bool IsIntel = Is("GenuineIntel");

    private static bool Is(string vendor)
    {
        if (!X86Base.IsSupported) return false;
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> id = stackalloc byte[12];
        BitConverter.TryWriteBytes(id, ebx);
        BitConverter.TryWriteBytes(id[4..], edx);
        BitConverter.TryWriteBytes(id[8..], ecx);
        return System.Text.Encoding.ASCII.GetString(id) == vendor;
    }
}
