using System.Runtime.InteropServices;

namespace AnyBit.Kernels;

/// <summary>
/// Native allocations for weights that decoding streams through once per token. On Linux they are 2 MiB aligned
/// and advised as transparent huge pages (many kernels only back madvise'd ranges with them): with 4 KiB pages a
/// 500 MB model walks ~120,000 pages per token and TLB misses cost a large share of the memory bandwidth.
/// </summary>
internal static unsafe partial class LargePageMemory
{
    private const nuint HugePage = 2 * 1024 * 1024;
    private const int MADV_HUGEPAGE = 14;

    public static void* Allocate(nuint bytes)
    {
        bool large = bytes >= HugePage;
        void* p = NativeMemory.AlignedAlloc(Math.Max(bytes, 64), large ? HugePage : 64);
        if (large && OperatingSystem.IsLinux())
        {
            // Whole huge pages inside the allocation only: advising the partial last one made the kernel back it with a
            // full 2 MiB page, a third more memory than the weights for the 4.4 MB experts of a gpt-oss-20b layer.
            try { _ = Madvise(p, bytes & ~(HugePage - 1), MADV_HUGEPAGE); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { /* advice only */ }
        }
        return p;
    }

    public static void Free(void* p) => NativeMemory.AlignedFree(p);

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);
}
