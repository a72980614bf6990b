using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The legacy ggml kinds whose only whole-block correction is the code offset (Q4_0, Q5_0, Q8_0, and mxint8): 16-row
// tiles for one and four tokens (TileX2 and its 32-column steps), and Q4_0's one-token decode with the high nibbles in
// place (Decode16Nibbles). When each runs: PackedKernel.Tiles.cs.
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One or four tokens × two groups (rows 0-7 and 8-15, their super-blocks alternating in memory). Per token and
    /// group one integer sum, started at the offset term (offset·Σx, exact in any order) and finished with the same
    /// fused multiply-add as <see cref="Finish"/>, so the same bits as the one-group tiles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileX2<TN, TS>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride) where TN : struct, IConstant where TS : struct, IStepX2
    {
        bool four = TN.Value == 4;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int e8m0Shift = TK.E8M0Shift;
        int xStride = superBlocks * sb, sumStride = xStride / 16;
        Vector256<float> fA = default, fB = default, fC = default, fD = default; // rows 0-7, tokens A-D
        Vector256<float> gA = default, gB = default, gC = default, gD = default; // rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            // Decode prefetches every line of the pair a distance ahead (PrefetchPair): it costs instructions with the
            // weights in cache, but a decode streams its weights from memory, where it won on Intel and was about level
            // on AMD. One line per pair, or one per 128 bytes, lost most of it (see docs/performance.md#prefetch).
            if (!four && Sse.IsSupported) PrefetchPair(w + PrefetchDistance, blockStride);
            var oA = OffsetTerm(xSums16);
            var oB = four ? OffsetTerm(xSums16 + sumStride) : default;
            var oC = four ? OffsetTerm(xSums16 + 2 * sumStride) : default;
            var oD = four ? OffsetTerm(xSums16 + 3 * sumStride) : default;
            Vector256<int> a = oA, b = oB, c = oC, d = oD, a1 = oA, b1 = oB, c1 = oC, d1 = oD;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits, vj = v + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                if (TK.Bits == 8)
                {
                    // Unrolled by hand, as in Tile (the JIT leaves loops of this size rolled).
                    Dot4x2<TN>(Vector256.Load(wj), Vector256.Load(wj + 128), Vector256.Load(vj), Vector256.Load(vj + 128), 0, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                    Dot4x2<TN>(Vector256.Load(wj + 32), Vector256.Load(wj + 160), Vector256.Load(vj + 32), Vector256.Load(vj + 160), 1, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                    Dot4x2<TN>(Vector256.Load(wj + 64), Vector256.Load(wj + 192), Vector256.Load(vj + 64), Vector256.Load(vj + 192), 2, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                    Dot4x2<TN>(Vector256.Load(wj + 96), Vector256.Load(wj + 224), Vector256.Load(vj + 96), Vector256.Load(vj + 224), 3, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                }
                else TS.Step<TN>(wj, vj, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1); // 4- and 5-bit codes
            }
            var dw = BlockScale(w + codeBytes, e8m0Shift);
            var dv = BlockScale(v + codeBytes, e8m0Shift);
            var xA = Vector256.Create(xScales[s]);
            fA = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), dw * xA, fA);
            gA = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a1), dv * xA, gA);
            if (!four) continue;
            var xB = Vector256.Create(xScales[superBlocks + s]);
            var xC = Vector256.Create(xScales[2 * superBlocks + s]);
            var xD = Vector256.Create(xScales[3 * superBlocks + s]);
            fB = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), dw * xB, fB);
            gB = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b1), dv * xB, gB);
            fC = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(c), dw * xC, fC);
            gC = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(c1), dv * xC, gC);
            fD = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(d), dw * xD, fD);
            gD = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(d1), dv * xD, gD);
        }
        int rest = rows - PackedMatrix.GroupRows;
        Store(fA, y, 8); Store(gA, y + 8, rest);
        if (!four) return;
        Store(fB, y + yStride, 8); Store(gB, y + yStride + 8, rest);
        Store(fC, y + 2 * yStride, 8); Store(gC, y + 2 * yStride + 8, rest);
        Store(fD, y + 3 * yStride, 8); Store(gD, y + 3 * yStride + 8, rest);
    }

    /// <summary>One 32-column step of two groups' 4- or 5-bit codes (wj, vj) against 1 or 4 tokens, added into the
    /// eight (token, group) sums: <see cref="TileX2{TN, TS}"/> and <see cref="TileX2K{TS}"/>.</summary>
    internal interface IStepX2
    {
        static abstract void Step<TN>(byte* wj, byte* vj, sbyte* xj, int xStride,
            ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> c, ref Vector256<int> d,
            ref Vector256<int> a1, ref Vector256<int> b1, ref Vector256<int> c1, ref Vector256<int> d1) where TN : struct, IConstant;
    }

    /// <summary>Nibbles (and Q5's fifth-bit plane) through the dot product's own accumulate.</summary>
    private struct NibbleX2 : IStepX2
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step<TN>(byte* wj, byte* vj, sbyte* xj, int xStride,
            ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> c, ref Vector256<int> d,
            ref Vector256<int> a1, ref Vector256<int> b1, ref Vector256<int> c1, ref Vector256<int> d1) where TN : struct, IConstant
        {
            var p0 = TK.Bits == 5 ? Vector256.Load(wj + 128).AsUInt16() : default;
            var q0 = TK.Bits == 5 ? Vector256.Load(vj + 128).AsUInt16() : default;
            // Unrolled by hand, as in Tile (the JIT leaves loops of this size rolled).
            Codes4(0, wj, p0, default, out var l0, out var h0); Codes4(0, vj, q0, default, out var m0, out var n0);
            Dot4x2<TN>(l0, h0, m0, n0, 0, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
            Codes4(1, wj, p0, default, out var l1, out var h1); Codes4(1, vj, q0, default, out var m1, out var n1);
            Dot4x2<TN>(l1, h1, m1, n1, 1, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
            Codes4(2, wj, p0, default, out var l2, out var h2); Codes4(2, vj, q0, default, out var m2, out var n2);
            Dot4x2<TN>(l2, h2, m2, n2, 2, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
            Codes4(3, wj, p0, default, out var l3, out var h3); Codes4(3, vj, q0, default, out var m3, out var n3);
            Dot4x2<TN>(l3, h3, m3, n3, 3, xj, xStride, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
        }
    }

    /// <summary>4-bit codes through int16 pair sums (<see cref="PairSums"/>), widened once per step.</summary>
    private struct NibblePairsX2 : IStepX2
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step<TN>(byte* wj, byte* vj, sbyte* xj, int xStride,
            ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> c, ref Vector256<int> d,
            ref Vector256<int> a1, ref Vector256<int> b1, ref Vector256<int> c1, ref Vector256<int> d1) where TN : struct, IConstant
        {
            Vector256<short> pa = default, pb = default, pc = default, pd = default, pa1 = default, pb1 = default, pc1 = default, pd1 = default;
            Codes4(0, wj, default, default, out var l0, out var h0); Codes4(0, vj, default, default, out var m0, out var n0);
            Dot4x2Pairs<TN>(l0, h0, m0, n0, 0, xj, xStride, ref pa, ref pb, ref pc, ref pd, ref pa1, ref pb1, ref pc1, ref pd1);
            Codes4(1, wj, default, default, out var l1, out var h1); Codes4(1, vj, default, default, out var m1, out var n1);
            Dot4x2Pairs<TN>(l1, h1, m1, n1, 1, xj, xStride, ref pa, ref pb, ref pc, ref pd, ref pa1, ref pb1, ref pc1, ref pd1);
            Codes4(2, wj, default, default, out var l2, out var h2); Codes4(2, vj, default, default, out var m2, out var n2);
            Dot4x2Pairs<TN>(l2, h2, m2, n2, 2, xj, xStride, ref pa, ref pb, ref pc, ref pd, ref pa1, ref pb1, ref pc1, ref pd1);
            Codes4(3, wj, default, default, out var l3, out var h3); Codes4(3, vj, default, default, out var m3, out var n3);
            Dot4x2Pairs<TN>(l3, h3, m3, n3, 3, xj, xStride, ref pa, ref pb, ref pc, ref pd, ref pa1, ref pb1, ref pc1, ref pd1);
            a += TD.WidenPairs(pa); a1 += TD.WidenPairs(pa1);
            if (TN.Value == 1) return;
            b += TD.WidenPairs(pb); b1 += TD.WidenPairs(pb1);
            c += TD.WidenPairs(pc); c1 += TD.WidenPairs(pc1);
            d += TD.WidenPairs(pd); d1 += TD.WidenPairs(pd1);
        }
    }

    /// <summary>
    /// Chunks k and k+4 of two groups (codes va/vb and wa/wb) dotted with four tokens' activations: each broadcast
    /// of a token's four activation bytes meets both groups.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4x2<TN>(Vector256<byte> va, Vector256<byte> vb, Vector256<byte> wa, Vector256<byte> wb, int k, sbyte* x, int xStride,
        ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> c, ref Vector256<int> d,
        ref Vector256<int> a1, ref Vector256<int> b1, ref Vector256<int> c1, ref Vector256<int> d1) where TN : struct, IConstant
    {
        DotBoth(va, vb, wa, wb, x, k, ref a, ref a1);
        if (TN.Value == 1) return;
        DotBoth(va, vb, wa, wb, x + xStride, k, ref b, ref b1);
        DotBoth(va, vb, wa, wb, x + 2 * xStride, k, ref c, ref c1);
        DotBoth(va, vb, wa, wb, x + 3 * xStride, k, ref d, ref d1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DotBoth(Vector256<byte> va, Vector256<byte> vb, Vector256<byte> wa, Vector256<byte> wb, sbyte* x, int k, ref Vector256<int> s, ref Vector256<int> s1)
    {
        var lo = X(x, k);
        var hi = X(x, k + 4);
        s = TD.Accumulate(TD.Accumulate(s, va, lo), vb, hi);
        s1 = TD.Accumulate(TD.Accumulate(s1, wa, lo), wb, hi);
    }

    /// <summary><see cref="Dot4x2{TN}"/> into int16 pair sums (<see cref="PairSums"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4x2Pairs<TN>(Vector256<byte> va, Vector256<byte> vb, Vector256<byte> wa, Vector256<byte> wb, int k, sbyte* x, int xStride,
        ref Vector256<short> a, ref Vector256<short> b, ref Vector256<short> c, ref Vector256<short> d,
        ref Vector256<short> a1, ref Vector256<short> b1, ref Vector256<short> c1, ref Vector256<short> d1) where TN : struct, IConstant
    {
        DotBothPairs(va, vb, wa, wb, x, k, ref a, ref a1);
        if (TN.Value == 1) return;
        DotBothPairs(va, vb, wa, wb, x + xStride, k, ref b, ref b1);
        DotBothPairs(va, vb, wa, wb, x + 2 * xStride, k, ref c, ref c1);
        DotBothPairs(va, vb, wa, wb, x + 3 * xStride, k, ref d, ref d1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DotBothPairs(Vector256<byte> va, Vector256<byte> vb, Vector256<byte> wa, Vector256<byte> wb, sbyte* x, int k, ref Vector256<short> s, ref Vector256<short> s1)
    {
        var lo = X(x, k);
        var hi = X(x, k + 4);
        s = TD.AccumulatePairs(TD.AccumulatePairs(s, va, lo), vb, hi);
        s1 = TD.AccumulatePairs(TD.AccumulatePairs(s1, wa, lo), wb, hi);
    }

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
                // The pair's 288 bytes, a distance ahead (see TileX2). On AMD with prefetcht2, not prefetcht1: faster
                // for this decode, level for the K-quants', so PrefetchLine keeps prefetcht1 (docs/performance.md#prefetch).
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
