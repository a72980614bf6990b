using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The 16-row one-token decode of the paired kinds without a tile of their own (int formats, NF4/FP4, IQ4_NL, MXFP4,
// minifloat and MX books): one driver (Decode16) and one 32-column step per code width (bytes, nibbles, crumbs).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One token × two groups for the paired kinds without <see cref="TileX2{TN, TS}"/> (int formats, tables, MX,
    /// ternary): each activation broadcast feeds both groups, each super-block's offset term and Σx are read once for
    /// both, and the pair's bytes are one run of memory. Per group one integer sum, started at the offset term, with
    /// the high table's sums and the zero points applied at the end of the super-block (exact integer steps), then
    /// the same fused multiply-add as <see cref="Finish"/>: the same bits as <see cref="Tile{TN}"/>. The 32-column
    /// step is <typeparamref name="TS"/>, one family of code layout each.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16<TS>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows) where TS : struct, IPairStep
    {
        byte* tables = (byte*)TK.Tables;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int e8m0Shift = TK.E8M0Shift;
        int zeroAt = codeBytes + PackedKind.ScaleBytesOf(TK.HalfScale);
        int aheadStep = blockStride * 32 / sb;
        Vector256<float> f = default, g = default; // rows 0-7, rows 8-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            var o = OffsetTerm(xSums16);
            Vector256<int> a = o, b = o, ha = default, hb = default; // ha, hb: the high table's sums (wide books)
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                // The pair's bytes in even steps through the super-block, a distance ahead (see PrefetchDistance
                // and TileX2). Only this step's codes left up to a third of a pair's lines to the hardware
                // prefetcher, which cost the 8-bit kinds most (see docs/performance.md#prefetch).
                if (Sse.IsSupported) PrefetchPair(w + PrefetchDistance + j * aheadStep, aheadStep);
                TS.Step(wj, v + j * 32 * TK.Bits, x + 32 * j, tables, ref a, ref b, ref ha, ref hb);
            }
            // Wide books' high table, else the steps' second dependency chain (chunks 4-7).
            if (TK.WideLut) { a += Vector256.ShiftLeft(ha, 7); b += Vector256.ShiftLeft(hb, 7); }
            else { a += ha; b += hb; }
            if (TK.Layout == SubScaleLayout.ZeroPoint)
            {
                // weight = d·(code − z): the row's zero point times the super-block's Σx (see Finish).
                var total = Vector256.Create(BlockSum(xSums16));
                a -= Avx2.ConvertToVector256Int32(w + zeroAt) * total;
                b -= Avx2.ConvertToVector256Int32(v + zeroAt) * total;
            }
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), BlockScale(w + codeBytes, e8m0Shift) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), BlockScale(v + codeBytes, e8m0Shift) * dx, g);
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
    }

    /// <summary>One 32-column step of <see cref="Decode16{TS}"/>: both groups' codes of these columns (wj, vj)
    /// dotted with the token's activations, into a and b (the high table's into ha and hb).</summary>
    internal interface IPairStep
    {
        static abstract void Step(byte* wj, byte* vj, sbyte* xj, byte* tables, ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb);
    }

    /// <summary>Both groups' codes of chunk c dotted with one broadcast of the token's four activation bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair(Vector256<byte> cw, Vector256<byte> cv, sbyte* xj, int c, ref Vector256<int> a, ref Vector256<int> b)
    {
        var xc = X(xj, c);
        a = TD.Accumulate(a, cw, xc);
        b = TD.Accumulate(b, cv, xc);
    }

    /// <summary>8-bit codes (int8 formats).</summary>
    private struct ByteStep : IPairStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step(byte* wj, byte* vj, sbyte* xj, byte* tables, ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb)
        {
            Pair(Vector256.Load(wj), Vector256.Load(vj), xj, 0, ref a, ref b);
            Pair(Vector256.Load(wj + 32), Vector256.Load(vj + 32), xj, 1, ref a, ref b);
            Pair(Vector256.Load(wj + 64), Vector256.Load(vj + 64), xj, 2, ref a, ref b);
            Pair(Vector256.Load(wj + 96), Vector256.Load(vj + 96), xj, 3, ref a, ref b);
            // Chunks 4-7 into the high sums, as NibbleStep.
            Pair(Vector256.Load(wj + 128), Vector256.Load(vj + 128), xj, 4, ref ha, ref hb);
            Pair(Vector256.Load(wj + 160), Vector256.Load(vj + 160), xj, 5, ref ha, ref hb);
            Pair(Vector256.Load(wj + 192), Vector256.Load(vj + 192), xj, 6, ref ha, ref hb);
            Pair(Vector256.Load(wj + 224), Vector256.Load(vj + 224), xj, 7, ref ha, ref hb);
        }
    }

    /// <summary>4-, 5- and 6-bit codes (int formats), or 4- and 6-bit indices into the kind's tables (IQ4_NL, MXFP4,
    /// NF4/FP4, minifloat and MX books).</summary>
    private struct NibbleStep : IPairStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step(byte* wj, byte* vj, sbyte* xj, byte* tables, ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb)
        {
            var p0 = TK.Bits != 4 ? Vector256.Load(wj + 128).AsUInt16() : default;
            var p1 = TK.Bits == 6 ? Vector256.Load(wj + 160).AsUInt16() : default;
            var q0 = TK.Bits != 4 ? Vector256.Load(vj + 128).AsUInt16() : default;
            var q1 = TK.Bits == 6 ? Vector256.Load(vj + 160).AsUInt16() : default;
            Vector256<byte> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
            if (TK.HasLut) TableLookup.Load(tables, TK.Bits, TD.Vbmi, out t0, out t1, out t2, out t3);
            if (TK.WideLut) TableLookup.Load(tables + TableLookup.HighOffset, TK.Bits, TD.Vbmi, out u0, out u1, out u2, out u3);
            Codes4(0, wj, p0, p1, out var l0, out var h0); Codes4(0, vj, q0, q1, out var m0, out var n0);
            Looked(l0, m0, xj, 0, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Looked(h0, n0, xj, 4, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Codes4(1, wj, p0, p1, out var l1, out var h1); Codes4(1, vj, q0, q1, out var m1, out var n1);
            Looked(l1, m1, xj, 1, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Looked(h1, n1, xj, 5, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Codes4(2, wj, p0, p1, out var l2, out var h2); Codes4(2, vj, q0, q1, out var m2, out var n2);
            Looked(l2, m2, xj, 2, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Looked(h2, n2, xj, 6, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Codes4(3, wj, p0, p1, out var l3, out var h3); Codes4(3, vj, q0, q1, out var m3, out var n3);
            Looked(l3, m3, xj, 3, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
            Looked(h3, n3, xj, 7, t0, t1, t2, t3, u0, u1, u2, u3, ref a, ref b, ref ha, ref hb);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Looked(Vector256<byte> cw, Vector256<byte> cv, sbyte* xj, int c,
            Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3,
            Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
            ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb)
        {
            var xc = X(xj, c);
            if (!TK.WideLut && c >= 4)
            {
                // Chunks 4-7 into the high sums, which Decode16 adds at the end of the super-block: two dependency
                // chains per group instead of one (see docs/performance.md#register-tiles).
                ha = TD.Accumulate(ha, Low(cw, t0, t1, t2, t3), xc);
                hb = TD.Accumulate(hb, Low(cv, t0, t1, t2, t3), xc);
                return;
            }
            if (!TK.HasLut)
            {
                a = TD.Accumulate(a, cw, xc);
                b = TD.Accumulate(b, cv, xc);
                return;
            }
            a = TD.Accumulate(a, TableLookup.Lookup(cw, TK.Bits, TD.Vbmi, t0, t1, t2, t3), xc);
            b = TD.Accumulate(b, TableLookup.Lookup(cv, TK.Bits, TD.Vbmi, t0, t1, t2, t3), xc);
            if (!TK.WideLut) return;
            ha = TD.Accumulate(ha, TableLookup.Lookup(cw, TK.Bits, TD.Vbmi, u0, u1, u2, u3), xc);
            hb = TD.Accumulate(hb, TableLookup.Lookup(cv, TK.Bits, TD.Vbmi, u0, u1, u2, u3), xc);
        }
    }

    /// <summary>3-bit codes (int3 formats; 2-bit kinds keep their 8-row tile, see PackedKind.PairedGroups).</summary>
    private struct CrumbStep : IPairStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Step(byte* wj, byte* vj, sbyte* xj, byte* tables, ref Vector256<int> a, ref Vector256<int> b, ref Vector256<int> ha, ref Vector256<int> hb)
        {
            var pw = TK.Bits == 3 ? Vector256.Load(wj + 64).AsUInt16() : default;
            var pv = TK.Bits == 3 ? Vector256.Load(vj + 64).AsUInt16() : default;
            Codes2(0, wj, pw, out var w0, out var w2, out var w4, out var w6); Codes2(0, vj, pv, out var v0, out var v2, out var v4, out var v6);
            // Chunks 4-7 into the high sums, which Decode16 adds at the end of the super-block: two dependency chains,
            // as NibbleStep (see docs/performance.md#register-tiles).
            Pair(w0, v0, xj, 0, ref a, ref b); Pair(w2, v2, xj, 2, ref a, ref b); Pair(w4, v4, xj, 4, ref ha, ref hb); Pair(w6, v6, xj, 6, ref ha, ref hb);
            Codes2(1, wj, pw, out var w1, out var w3, out var w5, out var w7); Codes2(1, vj, pv, out var v1, out var v3, out var v5, out var v7);
            Pair(w1, v1, xj, 1, ref a, ref b); Pair(w3, v3, xj, 3, ref a, ref b); Pair(w5, v5, xj, 5, ref ha, ref hb); Pair(w7, v7, xj, 7, ref ha, ref hb);
        }
    }
}
