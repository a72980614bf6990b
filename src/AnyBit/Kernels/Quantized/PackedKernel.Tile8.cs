using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The 8-row tiles, one to four tokens: every kind runs them (the fallback of Group, and the decode of the kinds that
// are not stored in pairs); the unpacking of each code width is written once here and in PackedKernel.cs.
internal static unsafe partial class PackedKernel<TK, TD>
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TN>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride) where TN : struct, IConstant
    {
        // Statics first, before any vector is live: a class-initialisation call after that point makes the register
        // allocator keep the accumulators in memory for the whole method (table kinds ran at half speed so).
        byte* tables = (byte*)TK.Tables;
        int offset = Offset;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockStride = BlockStride;
        int e8m0Shift = TK.E8M0Shift;
        bool two = TN.Value == 2;
        int xStride = superBlocks * sb; // token B's codes; its scales follow at superBlocks, its sums at xStride/16
        var acc = Vector256<float>.Zero;
        var accB = Vector256<float>.Zero;
        Vector256<byte> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
        if (TK.HasLut) TableLookup.Load(tables, TK.Bits, TD.Vbmi, out t0, out t1, out t2, out t3);
        if (TK.WideLut) TableLookup.Load(tables + TableLookup.HighOffset, TK.Bits, TD.Vbmi, out u0, out u1, out u2, out u3);
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* p = w + codeBytes;
            byte* sub = p + PackedKind.ScaleBytesOf(TK.HalfScale) * (TK.HasMins ? 2 : 1);
            short* xSumsB = xSums16 + xStride / 16;
            var isum = Vector256<int>.Zero;
            var imin = Vector256<int>.Zero;
            var isumB = Vector256<int>.Zero;
            var iminB = Vector256<int>.Zero;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                if (Sse.IsSupported) // (the kernels run on x86 only; a constant for the JIT)
                {
                    Prefetch(wj + PrefetchDistance);
                    if (TK.Bits >= 3) Prefetch(wj + PrefetchDistance + 64);
                    if (TK.Bits >= 5) Prefetch(wj + PrefetchDistance + 128);
                    if (TK.Bits >= 7) Prefetch(wj + PrefetchDistance + 192);
                }
                sbyte* xj = x + 32 * j;
                sbyte* xb = xj + xStride;
                // h: the 8 rows' sums over chunks 0-3 and 4-7 of these 32 columns; g: the high table's (wide books);
                // the b-suffixed ones are token B's.
                Vector256<int> h0 = default, h1 = default, g0 = default, g1 = default;
                Vector256<int> h0b = default, h1b = default, g0b = default, g1b = default;
                if (TK.Bits == 8)
                {
                    Bytes<TN>(0, wj, xj, xb, ref h0, ref h1, ref h0b, ref h1b);
                    Bytes<TN>(1, wj, xj, xb, ref h0, ref h1, ref h0b, ref h1b);
                    Bytes<TN>(2, wj, xj, xb, ref h0, ref h1, ref h0b, ref h1b);
                    Bytes<TN>(3, wj, xj, xb, ref h0, ref h1, ref h0b, ref h1b);
                }
                else if (TK.Bits is 4 or 6 or 5)
                {
                    // A 4-bit plane: chunk k in the low nibbles, chunk k+4 in the high ones; 6-bit codes add two
                    // high bits from the 2-bit plane after it, 5-bit codes one from the bit plane after it.
                    var p0 = TK.Bits != 4 ? Vector256.Load(wj + 128).AsUInt16() : default;
                    var p1 = TK.Bits == 6 ? Vector256.Load(wj + 160).AsUInt16() : default;
                    // Unrolled by hand: the JIT no longer unrolls a loop this size, and the rolled loop cost Q4_0 a
                    // large part of its speed.
                    Nibbles<TN>(0, wj, xj, xb, p0, p1, t0, t1, t2, t3, u0, u1, u2, u3, ref h0, ref h1, ref g0, ref g1, ref h0b, ref h1b, ref g0b, ref g1b);
                    Nibbles<TN>(1, wj, xj, xb, p0, p1, t0, t1, t2, t3, u0, u1, u2, u3, ref h0, ref h1, ref g0, ref g1, ref h0b, ref h1b, ref g0b, ref g1b);
                    Nibbles<TN>(2, wj, xj, xb, p0, p1, t0, t1, t2, t3, u0, u1, u2, u3, ref h0, ref h1, ref g0, ref g1, ref h0b, ref h1b, ref g0b, ref g1b);
                    Nibbles<TN>(3, wj, xj, xb, p0, p1, t0, t1, t2, t3, u0, u1, u2, u3, ref h0, ref h1, ref g0, ref g1, ref h0b, ref h1b, ref g0b, ref g1b);
                }
                else
                {
                    // A 2-bit plane: chunks k, k+2, k+4, k+6 at shifts 0, 2, 4, 6; 3-bit codes add a third bit from
                    // the bit plane after it (bit c is chunk c's).
                    var third = TK.Bits == 3 ? Vector256.Load(wj + 64).AsUInt16() : default;
                    // Unrolled by hand (as Nibbles): with k a loop variable the third bit's shifts were variable
                    // counts behind a branch, and Q3_K ran at a third of Q2_K's speed.
                    Crumbs<TN>(0, wj, xj, xb, third, ref h0, ref h1, ref h0b, ref h1b);
                    Crumbs<TN>(1, wj, xj, xb, third, ref h0, ref h1, ref h0b, ref h1b);
                }

                if (TK.WideLut)
                {
                    h0 += Vector256.ShiftLeft(g0, 7);
                    h1 += Vector256.ShiftLeft(g1, 7);
                    if (two) { h0b += Vector256.ShiftLeft(g0b, 7); h1b += Vector256.ShiftLeft(g1b, 7); }
                }
                isum = AddScaled(isum, h0, h1, sub, j, xSums16, offset);
                if (TK.HasMins) imin = AddMins(imin, sub, j, xSums16);
                if (two)
                {
                    isumB = AddScaled(isumB, h0b, h1b, sub, j, xSumsB, offset);
                    if (TK.HasMins) iminB = AddMins(iminB, sub, j, xSumsB);
                }
            }
            var d = BlockScale(p, e8m0Shift);
            acc = Finish(acc, isum, imin, d, p, xSums16, xScales[s], offset);
            if (two) accB = Finish(accB, isumB, iminB, d, p, xSumsB, xScales[superBlocks + s], offset);
        }
        Store(acc, y, rows);
        if (two) Store(accB, y + yStride, rows);
    }

    /// <summary>Byte codes of chunks c and c+4 dotted with token A's (and token B's) activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Bytes<TN>(int c, byte* wj, sbyte* xj, sbyte* xb,
        ref Vector256<int> h0, ref Vector256<int> h1, ref Vector256<int> h0b, ref Vector256<int> h1b) where TN : struct, IConstant
    {
        var v0 = Vector256.Load(wj + 32 * c);
        var v1 = Vector256.Load(wj + 32 * (c + 4));
        h0 = Dot(h0, v0, xj, c);
        h1 = Dot(h1, v1, xj, c + 4);
        if (TN.Value == 2) { h0b = Dot(h0b, v0, xb, c); h1b = Dot(h1b, v1, xb, c + 4); }
    }

    /// <summary>
    /// Vector k of a 2-bit plane (chunks k, k+2, k+4 and k+6 at shifts 0, 2, 4 and 6), with 3-bit codes' third bits
    /// from the bit plane <paramref name="third"/> (bit c is chunk c's), dotted with token A's (and B's) activations.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Crumbs<TN>(int k, byte* wj, sbyte* xj, sbyte* xb, Vector256<ushort> third,
        ref Vector256<int> h0, ref Vector256<int> h1, ref Vector256<int> h0b, ref Vector256<int> h1b) where TN : struct, IConstant
    {
        Codes2(k, wj, third, out var c0, out var c2, out var c4, out var c6);
        h0 = Dot(Dot(h0, c0, xj, k), c2, xj, k + 2);
        h1 = Dot(Dot(h1, c4, xj, k + 4), c6, xj, k + 6);
        if (TN.Value == 2)
        {
            h0b = Dot(Dot(h0b, c0, xb, k), c2, xb, k + 2);
            h1b = Dot(Dot(h1b, c4, xb, k + 4), c6, xb, k + 6);
        }
    }

    /// <summary>
    /// Vector k of a 4-bit plane (chunks k and k+4, with their fifth or fifth-and-sixth bits from the planes p0/p1),
    /// looked up where the kind has tables, dotted with token A's (and token B's) activations.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles<TN>(int k, byte* wj, sbyte* xj, sbyte* xb, Vector256<ushort> p0, Vector256<ushort> p1,
        Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3,
        Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        ref Vector256<int> h0, ref Vector256<int> h1, ref Vector256<int> g0, ref Vector256<int> g1,
        ref Vector256<int> h0b, ref Vector256<int> h1b, ref Vector256<int> g0b, ref Vector256<int> g1b) where TN : struct, IConstant
    {
        Codes4(k, wj, p0, p1, out var c0, out var c1);
        var l0 = Low(c0, t0, t1, t2, t3);
        var l1 = Low(c1, t0, t1, t2, t3);
        h0 = Dot(h0, l0, xj, k);
        h1 = Dot(h1, l1, xj, k + 4);
        if (TN.Value == 2) { h0b = Dot(h0b, l0, xb, k); h1b = Dot(h1b, l1, xb, k + 4); }
        if (TK.WideLut)
        {
            var m0 = Low(c0, u0, u1, u2, u3);
            var m1 = Low(c1, u0, u1, u2, u3);
            g0 = Dot(g0, m0, xj, k);
            g1 = Dot(g1, m1, xj, k + 4);
            if (TN.Value == 2) { g0b = Dot(g0b, m0, xb, k); g1b = Dot(g1b, m1, xb, k + 4); }
        }
    }

    /// <summary>
    /// Four tokens per tile for kinds without tables: every code vector is unpacked once and meets four tokens'
    /// activations. The same integer and float operations per token as <see cref="Tile{TN}"/>, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride)
    {
        int offset = Offset;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockStride = BlockStride;
        int e8m0Shift = TK.E8M0Shift;
        int xStride = superBlocks * sb, sumStride = xStride / 16;
        Vector256<float> accA = default, accB = default, accC = default, accD = default;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* p = w + codeBytes;
            byte* sub = p + PackedKind.ScaleBytesOf(TK.HalfScale); // after d (no dmin: no mins)
            short* sumsB = xSums16 + sumStride, sumsC = sumsB + sumStride, sumsD = sumsC + sumStride;
            Vector256<int> isA = default, isB = default, isC = default, isD = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                sbyte* xa = x + 32 * j;
                Vector256<int> a0 = default, a1 = default, b0 = default, b1 = default, c0 = default, c1 = default, d0 = default, d1 = default;
                if (TK.Bits == 8)
                {
                    // Unrolled by hand, as in Tile (the JIT leaves loops of this size rolled).
                    Dot4(Vector256.Load(wj), 0, Vector256.Load(wj + 128), 4, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Dot4(Vector256.Load(wj + 32), 1, Vector256.Load(wj + 160), 5, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Dot4(Vector256.Load(wj + 64), 2, Vector256.Load(wj + 192), 6, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Dot4(Vector256.Load(wj + 96), 3, Vector256.Load(wj + 224), 7, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                }
                else // 4-, 5- and 6-bit codes (FourTokenTile admits no narrower ones)
                {
                    var p0 = TK.Bits != 4 ? Vector256.Load(wj + 128).AsUInt16() : default;
                    var p1 = TK.Bits == 6 ? Vector256.Load(wj + 160).AsUInt16() : default;
                    Codes4(0, wj, p0, p1, out var l0, out var h0);
                    Dot4(l0, 0, h0, 4, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Codes4(1, wj, p0, p1, out var l1, out var h1);
                    Dot4(l1, 1, h1, 5, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Codes4(2, wj, p0, p1, out var l2, out var h2);
                    Dot4(l2, 2, h2, 6, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                    Codes4(3, wj, p0, p1, out var l3, out var h3);
                    Dot4(l3, 3, h3, 7, xa, xStride, ref a0, ref a1, ref b0, ref b1, ref c0, ref c1, ref d0, ref d1);
                }
                isA = AddScaled(isA, a0, a1, sub, j, xSums16, offset);
                isB = AddScaled(isB, b0, b1, sub, j, sumsB, offset);
                isC = AddScaled(isC, c0, c1, sub, j, sumsC, offset);
                isD = AddScaled(isD, d0, d1, sub, j, sumsD, offset);
            }
            var d = BlockScale(p, e8m0Shift);
            // No mins here (FourTokenTile admits no kinds with mins): imin is zero.
            accA = Finish(accA, isA, default, d, p, xSums16, xScales[s], offset);
            accB = Finish(accB, isB, default, d, p, sumsB, xScales[superBlocks + s], offset);
            accC = Finish(accC, isC, default, d, p, sumsC, xScales[2 * superBlocks + s], offset);
            accD = Finish(accD, isD, default, d, p, sumsD, xScales[3 * superBlocks + s], offset);
        }
        Store(accA, y, rows);
        Store(accB, y + yStride, rows);
        Store(accC, y + 2 * yStride, rows);
        Store(accD, y + 3 * yStride, rows);
    }

    /// <summary>Code vectors of chunks ca and cb dotted with four tokens' activations (token u at x + u·xStride).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4(Vector256<byte> va, int ca, Vector256<byte> vb, int cb, sbyte* x, int xStride,
        ref Vector256<int> a0, ref Vector256<int> a1, ref Vector256<int> b0, ref Vector256<int> b1,
        ref Vector256<int> c0, ref Vector256<int> c1, ref Vector256<int> d0, ref Vector256<int> d1)
    {
        a0 = Dot(a0, va, x, ca); a1 = Dot(a1, vb, x, cb);
        b0 = Dot(b0, va, x + xStride, ca); b1 = Dot(b1, vb, x + xStride, cb);
        c0 = Dot(c0, va, x + 2 * xStride, ca); c1 = Dot(c1, vb, x + 2 * xStride, cb);
        d0 = Dot(d0, va, x + 3 * xStride, ca); d1 = Dot(d1, vb, x + 3 * xStride, cb);
    }
}
