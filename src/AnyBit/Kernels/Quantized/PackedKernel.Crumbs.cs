using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// 2-bit codes without sub-scales (int2, TQ2_0/TQ1_0 where they stay interleaved), one token × 8 rows: each crumb
// multiplied where it sits (CrumbsInPlace in PackedKernel.Tiles.cs says when).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One token × one group of <see cref="CrumbsInPlace"/> codes. Per super-block, h_p = Σ (4^p·code)·x over the
    /// chunks at position p (k + 2p of vector k); each is a multiple of 4^p, so Σ h_p >> 2p is exactly
    /// <see cref="Tile{TN}"/>'s integer sum, and <see cref="Finish"/> follows as there: the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode8Crumbs(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        int sb = TK.SuperBlock, codeBytes = 2 * sb;
        int blockStride = BlockStride;
        int e8m0Shift = TK.E8M0Shift;
        int offset = Offset;
        var m0 = Vector256.Create((byte)0x03);
        var m1 = Vector256.Create((byte)0x0C);
        var m2 = Vector256.Create((byte)0x30);
        var m3 = Vector256.Create((byte)0xC0);
        var acc = Vector256<float>.Zero;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            Vector256<int> h0 = default, h1 = default, h2 = default, h3 = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + 64 * j;
                sbyte* xj = x + 32 * j;
                if (Sse.IsSupported) Prefetch(wj + PrefetchDistance); // as Tile
                InPlace(Vector256.Load(wj), xj, 0, m0, m1, m2, m3, ref h0, ref h1, ref h2, ref h3);
                InPlace(Vector256.Load(wj + 32), xj, 1, m0, m1, m2, m3, ref h0, ref h1, ref h2, ref h3);
            }
            var isum = h0 + Vector256.ShiftRightArithmetic(h1, 2) + Vector256.ShiftRightArithmetic(h2, 4) + Vector256.ShiftRightArithmetic(h3, 6);
            byte* p = w + codeBytes;
            acc = Finish(acc, isum, default, BlockScale(p, e8m0Shift), p, xSums16, xScales[s], offset);
        }
        Store(acc, y, rows);
    }

    /// <summary>Vector k of a 2-bit plane: chunk k + 2p's codes, as 4^p·code, into h_p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InPlace(Vector256<byte> v, sbyte* xj, int k, Vector256<byte> m0, Vector256<byte> m1, Vector256<byte> m2, Vector256<byte> m3,
        ref Vector256<int> h0, ref Vector256<int> h1, ref Vector256<int> h2, ref Vector256<int> h3)
    {
        h0 = TD.Accumulate(h0, v & m0, X(xj, k));
        h1 = TD.Accumulate(h1, v & m1, X(xj, k + 2));
        h2 = TD.Accumulate(h2, v & m2, X(xj, k + 4));
        h3 = TD.Accumulate(h3, v & m3, X(xj, k + 6));
    }
}
