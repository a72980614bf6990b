using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The K-quants' 16-row tiles: Q4_K/Q5_K (32-column sub-blocks with scale and min) for one token (Decode16K) and four
// (TileX2K), the signed 16-value sub-scales of Q6_K and the grid i-quants (Decode16Signed), Q2_K/Q3_K
// (Decode16KCrumbs). When each runs: PackedKernel.Tiles.cs.
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// <see cref="Decode16{TS}"/> for Q4_K and Q5_K, whose 32-column sub-blocks each have a 6-bit scale and min: per
    /// step both groups' sums of these columns, times their sub-scales, and every other step the mins against the
    /// pair of sub-blocks' Σx — <see cref="Tile{TN}"/>'s integer steps, then <see cref="Finish"/>'s two fused
    /// multiply-adds, so the same bits. Its own method (and written out, not through AddScaled/AddMins/Finish):
    /// the JIT inlines dead generic branches before folding them, and with them the budget ran out (calls, and
    /// accumulators kept in memory).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16K<TS>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows) where TS : struct, IPairStep
    {
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int subAt = codeBytes + 2 * PackedKind.ScaleBytesOf(TK.HalfScale); // after d and dmin
        int aheadStep = blockStride * 32 / sb;
        Vector256<float> f = default, g = default; // rows 0-7, rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            Vector256<int> a = default, b = default, ma = default, mb = default;
            for (int j = 0; j < sb / 32; j++)
            {
                if (Sse.IsSupported)
                {
                    // The pair's bytes (codes, scales, sub-scales: 2368 for Q4_K) in even steps through the
                    // super-block, a distance ahead (see PrefetchDistance), into L2 — unlike Q4_K's 8-row tile, which
                    // prefetches into L1: here L2 beat the 8-row tile and L1 did not, and prefetching each group's
                    // codes without the scales lost badly (see docs/performance.md#prefetch).
                    PrefetchPair(w + PrefetchDistance + j * aheadStep, aheadStep);
                }
                // The step's sums of chunks 0-3 and 4-7 apart (two dependency chains per group; NibbleStep), then added.
                Vector256<int> sa = default, sv = default, ha = default, hv = default;
                TS.Step(w + j * 32 * TK.Bits, v + j * 32 * TK.Bits, x + 32 * j, null, ref sa, ref sv, ref ha, ref hv);
                sa += ha; sv += hv;
                a += Avx2.ConvertToVector256Int32(w + subAt + 8 * j) * sa;
                b += Avx2.ConvertToVector256Int32(v + subAt + 8 * j) * sv;
                if ((j & 1) == 0)
                {
                    // Mins of sub-blocks j and j+1 against their Σx: one int16-pair multiply-add (see AddMins).
                    short* xs = xSums16 + 2 * j;
                    var sums = Pair(xs[0] + xs[1], xs[2] + xs[3]);
                    ma = MultiplyAddPairs(ma, Avx2.ConvertToVector256Int16(w + subAt + 64 + 8 * j), sums);
                    mb = MultiplyAddPairs(mb, Avx2.ConvertToVector256Int16(v + subAt + 64 + 8 * j), sums);
                }
            }
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), HalfWidening.Widen8Finite(w + codeBytes) * dx, f);
            f = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(ma), HalfWidening.Widen8Finite(w + codeBytes + 16) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), HalfWidening.Widen8Finite(v + codeBytes) * dx, g);
            g = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(mb), HalfWidening.Widen8Finite(v + codeBytes + 16) * dx, g);
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
    }

    /// <summary>One 32-column step of two groups' 4-bit codes against one token, through int16 pair sums
    /// (<see cref="PairSums"/>); adds into a and b. A type of its own, so that each kernel instance inlines one step
    /// (with both in one method the JIT ran out of inlining budget and called its helpers, and Q4_K decode slowed).</summary>
    private struct NibblePairStep : IPairStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step(byte* wj, byte* vj, sbyte* xj, byte* tables, ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb)
        {
            // The prefill step's one-token case: its token A sums of both groups are a and b (the others untouched).
            Vector256<int> unused = default;
            NibblePairsX2.Step<C1>(wj, vj, xj, 0, ref a, ref unused, ref unused, ref unused, ref b, ref unused, ref unused, ref unused);
        }
    }

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

    /// <summary>
    /// <see cref="Decode16{TS}"/> for the signed 16-value sub-scales: Q6_K's 6-bit codes and the 8-bit codes of the
    /// grid i-quants (a 4-bit table kind of this layout would take the same steps). Per step and group the sums of
    /// columns 0-15 and 16-31 apart, each times its sub-scale, plus the offset times Σ sc·Σx as one int16-pair
    /// multiply-add — <see cref="AddScaled"/>'s steps, then <see cref="Finish"/>'s fused multiply-add, so the same bits as the 8-row
    /// tile. Its own method, written out (see <see cref="Decode16K{TS}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16Signed(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        // Statics first (see Tile).
        byte* tables = (byte*)TK.Tables;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int subAt = codeBytes + PackedKind.ScaleBytesOf(TK.HalfScale); // after d
        int aheadStep = blockStride * 32 / sb;
        var offset = Vector256.Create(Offset);
        Vector256<byte> t0 = default, t1 = default, t2 = default, t3 = default;
        if (TK.HasLut) TableLookup.Load(tables, TK.Bits, TD.Vbmi, out t0, out t1, out t2, out t3);
        Vector256<float> f = default, g = default; // rows 0-7, rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            Vector256<int> a = default, b = default;
            for (int j = 0; j < sb / 32; j++)
            {
                if (Sse.IsSupported) PrefetchPair(w + PrefetchDistance + j * aheadStep, aheadStep);
                byte* wj = w + j * 32 * TK.Bits, vj = v + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                var p0 = TK.Bits is 5 or 6 ? Vector256.Load(wj + 128).AsUInt16() : default;
                var p1 = TK.Bits == 6 ? Vector256.Load(wj + 160).AsUInt16() : default;
                var q0 = TK.Bits is 5 or 6 ? Vector256.Load(vj + 128).AsUInt16() : default;
                var q1 = TK.Bits == 6 ? Vector256.Load(vj + 160).AsUInt16() : default;
                // a0/b0: columns 0-15 (chunks 0-3) of each group; a1/b1: columns 16-31 (chunks 4-7).
                Vector256<int> a0 = default, a1 = default, b0 = default, b1 = default;
                Halves(0, wj, vj, xj, p0, p1, q0, q1, t0, t1, t2, t3, ref a0, ref a1, ref b0, ref b1);
                Halves(1, wj, vj, xj, p0, p1, q0, q1, t0, t1, t2, t3, ref a0, ref a1, ref b0, ref b1);
                Halves(2, wj, vj, xj, p0, p1, q0, q1, t0, t1, t2, t3, ref a0, ref a1, ref b0, ref b1);
                Halves(3, wj, vj, xj, p0, p1, q0, q1, t0, t1, t2, t3, ref a0, ref a1, ref b0, ref b1);
                // Lane r of the widened sub-scales: row r's pair (sub-block 2j low, 2j+1 high); see AddScaled.
                var sw = Avx2.ConvertToVector256Int16((sbyte*)w + subAt + 16 * j);
                var sv = Avx2.ConvertToVector256Int16((sbyte*)v + subAt + 16 * j);
                a += Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(sw.AsInt32(), 16), 16) * a0 + Vector256.ShiftRightArithmetic(sw.AsInt32(), 16) * a1;
                b += Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(sv.AsInt32(), 16), 16) * b0 + Vector256.ShiftRightArithmetic(sv.AsInt32(), 16) * b1;
                if (Offset != 0)
                {
                    var sumPair = SumPair(xSums16, j);
                    a += Avx2.MultiplyAddAdjacent(sw, sumPair) * offset;
                    b += Avx2.MultiplyAddAdjacent(sv, sumPair) * offset;
                }
            }
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), BlockScale(w + codeBytes, 0) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), BlockScale(v + codeBytes, 0) * dx, g);
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
    }

    /// <summary>Chunks k (into a0, b0) and k+4 (into a1, b1) of both groups' codes dotted with the token: bytes, or
    /// a 4-bit plane (with 5- and 6-bit codes' high bits from p/q, or looked up in the kind's table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Halves(int k, byte* wj, byte* vj, sbyte* xj, Vector256<ushort> p0, Vector256<ushort> p1, Vector256<ushort> q0, Vector256<ushort> q1,
        Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3,
        ref Vector256<int> a0, ref Vector256<int> a1, ref Vector256<int> b0, ref Vector256<int> b1)
    {
        Vector256<byte> l, h, m, n;
        if (TK.Bits == 8)
        {
            l = Vector256.Load(wj + 32 * k); h = Vector256.Load(wj + 32 * (k + 4));
            m = Vector256.Load(vj + 32 * k); n = Vector256.Load(vj + 32 * (k + 4));
        }
        else
        {
            Codes4(k, wj, p0, p1, out l, out h);
            Codes4(k, vj, q0, q1, out m, out n);
            l = Low(l, t0, t1, t2, t3); h = Low(h, t0, t1, t2, t3);
            m = Low(m, t0, t1, t2, t3); n = Low(n, t0, t1, t2, t3);
        }
        var xl = X(xj, k);
        var xh = X(xj, k + 4);
        a0 = TD.Accumulate(a0, l, xl);
        b0 = TD.Accumulate(b0, m, xl);
        a1 = TD.Accumulate(a1, h, xh);
        b1 = TD.Accumulate(b1, n, xh);
    }

    /// <summary>
    /// <see cref="Decode16{TS}"/> for Q2_K and Q3_K: per step and group the sums of columns 0-15 and 16-31 (int16 each,
    /// see SumsFitInt16) packed as a pair that meets the pair of sub-scales in one int16 multiply-add — with Q3_K's
    /// offset folded in, and Q2_K's mins against the Σx pair in another — then <see cref="Finish"/>'s fused
    /// multiply-adds: <see cref="AddScaled"/>/<see cref="AddMins"/>'s integer steps, so the same bits as the 8-row
    /// tile. Its own method, written out (see <see cref="Decode16K{TS}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16KCrumbs(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        bool mins = TK.Layout == SubScaleLayout.PackedScaleMin16;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int subAt = codeBytes + PackedKind.ScaleBytesOf(TK.HalfScale) * (mins ? 2 : 1); // after d (and dmin)
        int aheadStep = blockStride * 32 / sb;
        var offset16 = Vector256.Create((short)Offset);
        Vector256<float> f = default, g = default; // rows 0-7, rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            Vector256<int> a = default, b = default, ma = default, mb = default;
            for (int j = 0; j < sb / 32; j++)
            {
                if (Sse.IsSupported) PrefetchPair(w + PrefetchDistance + j * aheadStep, aheadStep);
                byte* wj = w + j * 32 * TK.Bits, vj = v + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                var pw = TK.Bits == 3 ? Vector256.Load(wj + 64).AsUInt16() : default;
                var pv = TK.Bits == 3 ? Vector256.Load(vj + 64).AsUInt16() : default;
                // a0/b0: columns 0-15 (chunks 0-3) of each group; a1/b1: columns 16-31 (chunks 4-7).
                Vector256<int> a0 = default, a1 = default, b0 = default, b1 = default;
                CrumbHalves(0, wj, vj, xj, pw, pv, ref a0, ref a1, ref b0, ref b1);
                CrumbHalves(1, wj, vj, xj, pw, pv, ref a0, ref a1, ref b0, ref b1);
                var sumPair = SumPair(xSums16, j);
                var hw = PackPairs(a0, a1);
                var hv = PackPairs(b0, b1);
                if (mins)
                {
                    var rw = Avx2.ConvertToVector256Int16(w + subAt + 16 * j);
                    var rv = Avx2.ConvertToVector256Int16(v + subAt + 16 * j);
                    var low = Vector256.Create((short)15);
                    a = MultiplyAddPairs(a, hw, rw & low);
                    b = MultiplyAddPairs(b, hv, rv & low);
                    ma = MultiplyAddPairs(ma, Vector256.ShiftRightLogical(rw.AsUInt16(), 4).AsInt16(), sumPair);
                    mb = MultiplyAddPairs(mb, Vector256.ShiftRightLogical(rv.AsUInt16(), 4).AsInt16(), sumPair);
                }
                else
                {
                    var offsetSums = sumPair * offset16;
                    a = MultiplyAddPairs(a, hw + offsetSums, Avx2.ConvertToVector256Int16((sbyte*)w + subAt + 16 * j));
                    b = MultiplyAddPairs(b, hv + offsetSums, Avx2.ConvertToVector256Int16((sbyte*)v + subAt + 16 * j));
                }
            }
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), HalfWidening.Widen8Finite(w + codeBytes) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), HalfWidening.Widen8Finite(v + codeBytes) * dx, g);
            if (mins)
            {
                f = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(ma), HalfWidening.Widen8Finite(w + codeBytes + 16) * dx, f);
                g = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(mb), HalfWidening.Widen8Finite(v + codeBytes + 16) * dx, g);
            }
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
    }

    /// <summary>Vector k of both groups' 2-bit planes (chunks k, k+2 into a0/b0; k+4, k+6 into a1/b1), with 3-bit
    /// codes' third bits from the bit planes pw/pv, dotted with the token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CrumbHalves(int k, byte* wj, byte* vj, sbyte* xj, Vector256<ushort> pw, Vector256<ushort> pv,
        ref Vector256<int> a0, ref Vector256<int> a1, ref Vector256<int> b0, ref Vector256<int> b1)
    {
        Codes2(k, wj, pw, out var w0, out var w2, out var w4, out var w6);
        Codes2(k, vj, pv, out var v0, out var v2, out var v4, out var v6);
        var x0 = X(xj, k); var x2 = X(xj, k + 2); var x4 = X(xj, k + 4); var x6 = X(xj, k + 6);
        a0 = TD.Accumulate(TD.Accumulate(a0, w0, x0), w2, x2);
        b0 = TD.Accumulate(TD.Accumulate(b0, v0, x0), v2, x2);
        a1 = TD.Accumulate(TD.Accumulate(a1, w4, x4), w6, x6);
        b1 = TD.Accumulate(TD.Accumulate(b1, v4, x4), v6, x6);
    }
}
