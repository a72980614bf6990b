using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// Four tokens × two groups for Q4_K and Q5_K (32-column sub-blocks with a 6-bit scale and min each): prompt
    /// processing's tile for the kind that dominates a Q4_K_M model. Each code vector is unpacked once for four
    /// tokens and each activation broadcast meets both groups, where the 8-row pair tile unpacked every code for two
    /// tokens only and spent as much on sub-scales as on dot products. Per 32-column step the 8 (token, group) sums
    /// are scaled by their rows' sub-scales into the super-block's integer sums; the mins against Σx are taken once
    /// per super-block after the steps (as <see cref="AddMins"/>, sub-block pairs), then <see cref="Finish"/>'s two
    /// fused multiply-adds — the same integer values and float operations as the reference, so the same bits.
    /// The float sums live in memory: they change once per super-block, and in registers they would leave the
    /// 32-column step (8 sums, 8 super-block sums, codes and broadcasts) short of AVX-512's 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileX2K<TS>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride) where TS : struct, IStepX2
    {
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int subAt = codeBytes + 2 * PackedKind.ScaleBytesOf(TK.HalfScale); // after d and dmin
        int xStride = superBlocks * sb, sumStride = xStride / 16;
        var acc = stackalloc Vector256<float>[8]; // [t]: rows 0-7 of token t; [4 + t]: rows 8-15
        for (int i = 0; i < 8; i++) acc[i] = default;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            // Super-block sums of rows 0-7 (iA-iD) and 8-15 (jA-jD), tokens A-D.
            Vector256<int> iA = default, iB = default, iC = default, iD = default;
            Vector256<int> jA = default, jB = default, jC = default, jD = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits, vj = v + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                Vector256<int> a = default, b = default, c = default, d = default, a1 = default, b1 = default, c1 = default, d1 = default;
                TS.Step<C4>(wj, vj, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                var sw = Avx2.ConvertToVector256Int32(w + subAt + 8 * j);
                var sv = Avx2.ConvertToVector256Int32(v + subAt + 8 * j);
                iA += sw * a; iB += sw * b; iC += sw * c; iD += sw * d;
                jA += sv * a1; jB += sv * b1; jC += sv * c1; jD += sv * d1;
            }
            FinishK(acc, acc + 4, iA, jA, w, v, codeBytes, subAt, xSums16, xScales[s]);
            FinishK(acc + 1, acc + 5, iB, jB, w, v, codeBytes, subAt, xSums16 + sumStride, xScales[superBlocks + s]);
            FinishK(acc + 2, acc + 6, iC, jC, w, v, codeBytes, subAt, xSums16 + 2 * sumStride, xScales[2 * superBlocks + s]);
            FinishK(acc + 3, acc + 7, iD, jD, w, v, codeBytes, subAt, xSums16 + 3 * sumStride, xScales[3 * superBlocks + s]);
        }
        int rest = rows - PackedMatrix.GroupRows;
        for (int t = 0; t < 4; t++)
        {
            Store(acc[t], y + t * yStride, 8);
            Store(acc[4 + t], y + t * yStride + 8, rest);
        }
    }

    /// <summary>
    /// One token's super-block into both groups' float sums: its mins against Σx (sub-block pairs, as
    /// <see cref="AddMins"/>), then isum·(d·dx) and −imin·(dmin·dx) as <see cref="Finish"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FinishK(Vector256<float>* f, Vector256<float>* g, Vector256<int> a, Vector256<int> b,
        byte* w, byte* v, int codeBytes, int subAt, short* xSums16, float xScale)
    {
        Vector256<int> ma = default, mb = default;
        for (int j = 0; j < TK.SuperBlock / 32; j++)
        {
            ma = AddMins(ma, w + subAt, j, xSums16);
            mb = AddMins(mb, v + subAt, j, xSums16);
        }
        var dx = Vector256.Create(xScale);
        var fw = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), HalfWidening.Widen8Finite(w + codeBytes) * dx, *f);
        *f = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(ma), HalfWidening.Widen8Finite(w + codeBytes + 16) * dx, fw);
        var gv = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), HalfWidening.Widen8Finite(v + codeBytes) * dx, *g);
        *g = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(mb), HalfWidening.Widen8Finite(v + codeBytes + 16) * dx, gv);
    }
}
