using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// Q4_0's decode where the dot product is exact for bytes up to 240 (VNNI): the high nibbles are multiplied where
    /// they sit, as 16·code, and their sum shifted down by 4 once per block. One token's decode is bound by
    /// instructions, not by the dot products (about 128 instructions per 32-column block, 16 of them vpdpbusd), and
    /// this takes the shift out of every code vector's unpacking — a mask each for the two halves, no vpsrlw — and
    /// gives each group two dependency chains instead of one. Measured against <see cref="TileX2{TN, TS}"/>'s one-token
    /// step on AMD Zen 5 (AVX-VNNI), variants alternating in one process: weights in cache, one thread, 29.3 → 35.4
    /// GB/s; from memory, two threads, 5632×2048 +7 % and 2048×5632 +5 % (16 rounds); the synthetic 1B Q4_0 decode
    /// +5 % (ahead in 8 of 12). Without the software prefetch it lost 5–12 % from memory, so it keeps it.
    /// </summary>
    private static bool HighNibblesInPlace =>
        TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasLut && !TK.HasMins
        && TD.MaxCode >= 0xF0 && TD.CodeBias == 0 && !TD.SumsPairs;

    /// <summary>
    /// One token × two groups of 32-value blocks of 4-bit codes (<see cref="HighNibblesInPlace"/>). Per block and
    /// group, A = offset·Σx + Σ lo·x over chunks 0-3 and B = Σ (16·hi)·x over chunks 4-7; B is a multiple of 16, so
    /// A + (B >> 4) is exactly <see cref="TileX2{TN, TS}"/>'s integer sum, and the same fused multiply-add follows:
    /// the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16Nibbles(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        int codeBytes = 32 * TK.Bits;
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int e8m0Shift = TK.E8M0Shift;
        var low = Vector256.Create((byte)0x0F);
        var high = Vector256.Create((byte)0xF0);
        Vector256<float> f = default, g = default; // rows 0-7, rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += 32, xSums16 += 2)
        {
            byte* v = w + blockBytes;
            if (Sse.IsSupported)
            {
                // The pair's 288 bytes, a distance ahead (see TileX2). On AMD with prefetcht2, not prefetcht1: Zen 5,
                // 1B Q4_0 decode +4.7 % (ahead in 11 of 12 alternations; 2048×5632 +7 %, 5632×2048 −3 % alone). The
                // 1B Q4_K_M and Q2_K decodes measured level with it (−0.6 %, −0.1 %), so PrefetchLine keeps prefetcht1.
                byte* ahead = w + PrefetchDistance;
                if (PrefetchLevel.IntoL1) PrefetchPair(ahead, blockStride);
                else { Sse.Prefetch2(ahead); Sse.Prefetch2(ahead + 64); Sse.Prefetch2(ahead + 128); Sse.Prefetch2(ahead + 192); Sse.Prefetch2(ahead + 256); }
            }
            var o = OffsetTerm(xSums16);
            Vector256<int> a = o, a1 = o, b = default, b1 = default;
            NibblesInPlace(w, v, x, 0, low, high, ref a, ref a1, ref b, ref b1);
            NibblesInPlace(w, v, x, 1, low, high, ref a, ref a1, ref b, ref b1);
            NibblesInPlace(w, v, x, 2, low, high, ref a, ref a1, ref b, ref b1);
            NibblesInPlace(w, v, x, 3, low, high, ref a, ref a1, ref b, ref b1);
            a += Vector256.ShiftRightArithmetic(b, 4);
            a1 += Vector256.ShiftRightArithmetic(b1, 4);
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), BlockScale(w + codeBytes, e8m0Shift) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a1), BlockScale(v + codeBytes, e8m0Shift) * dx, g);
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
    }

    /// <summary>Vector k of both groups' 4-bit planes: low nibbles (chunk k) into a/a1, high ones as 16·code (chunk
    /// k+4) into b/b1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NibblesInPlace(byte* w, byte* v, sbyte* x, int k, Vector256<byte> low, Vector256<byte> high,
        ref Vector256<int> a, ref Vector256<int> a1, ref Vector256<int> b, ref Vector256<int> b1)
    {
        var cw = Vector256.Load(w + 32 * k);
        var cv = Vector256.Load(v + 32 * k);
        var xl = X(x, k);
        var xh = X(x, k + 4);
        a = TD.Accumulate(a, cw & low, xl);
        a1 = TD.Accumulate(a1, cv & low, xl);
        b = TD.Accumulate(b, cw & high, xh);
        b1 = TD.Accumulate(b1, cv & high, xh);
    }
}
