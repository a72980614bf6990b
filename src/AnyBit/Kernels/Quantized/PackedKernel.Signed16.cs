using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The 8-row tile of the kinds with a signed sub-scale per 16 or 32 values (Q6_K, the grid i-quants' bytes, IQ4_XS) where the
// dot product is AVX2's int16 pairs (Signed16Pairs in PackedKernel.Tiles.cs says when).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One or two tokens × 8 rows of <see cref="Signed16Pairs"/> kinds: each code vector's int16 pair products
    /// (<see cref="IDotProduct.Pairs"/>) are widened by vpmaddwd against the rows' sub-scale, doubled into both int16
    /// halves of the lane, where <see cref="Tile{TN}"/> widens them against ones and then multiplies the 16-value sums
    /// by their sub-scales in 32-bit lanes (two vpmulld and their shifts per 32 columns and token). The offset term
    /// Σ sc·Σx is one int16-pair multiply-add per 32 columns, times the offset once per super-block. The same integers
    /// as <see cref="AddScaled"/>'s (each lane's sums are exact: at most 2·32512·128 per product, 64 products a
    /// super-block) and <see cref="Finish"/>'s fused multiply-add, so the same bits as the reference.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileSigned16<TN>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride) where TN : struct, IConstant
    {
        // Statics first, before any vector is live (see Tile).
        byte* tables = (byte*)TK.Tables;
        int offset = Offset;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockStride = BlockStride;
        bool two = TN.Value == 2;
        int xStride = superBlocks * sb; // token B's codes; its scales follow at superBlocks, its sums at xStride/16
        Vector256<byte> t0 = default, t1 = default, t2 = default, t3 = default;
        if (TK.HasLut) TableLookup.Load(tables, TK.Bits, TD.Vbmi, out t0, out t1, out t2, out t3);
        if (SignedTable) t0 ^= Vector256.Create((byte)0x80);
        // Lane r of the widened sub-scales holds row r's pair (sub-block 2j, 2j+1: see PackedMatrix); vpshufb doubles
        // either one into both halves of the lane. Signed32's one scale per 32 columns is doubled by a shift.
        var first = Vector256.Create((byte)0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
        var second = Vector256.Create((byte)2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15);
        var acc = Vector256<float>.Zero;
        var accB = Vector256<float>.Zero;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* p = w + codeBytes;
            sbyte* sub = (sbyte*)p + PackedKind.ScaleBytesOf(TK.HalfScale); // after d (no mins)
            short* xSumsB = xSums16 + xStride / 16;
            // i0/i1: chunks 0-3 and 4-7 of each 32 columns (two dependency chains); o: Σ sc·Σx. B: token B's.
            Vector256<int> i0 = default, i1 = default, o = default, iB0 = default, iB1 = default, oB = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                if (Sse.IsSupported)
                {
                    Prefetch(wj + PrefetchDistance);
                    Prefetch(wj + PrefetchDistance + 64);
                    if (TK.Bits >= 5) Prefetch(wj + PrefetchDistance + 128);
                    if (TK.Bits >= 7) Prefetch(wj + PrefetchDistance + 192);
                }
                sbyte* xj = x + 32 * j;
                sbyte* xb = xj + xStride;
                Vector256<short> sc, s0, s1;
                if (TK.Layout == SubScaleLayout.Signed32)
                {
                    var s32 = Avx2.ConvertToVector256Int32(sub + 8 * j);
                    sc = s0 = s1 = (Vector256.ShiftLeft(s32, 16) | (s32 & Vector256.Create(0xFFFF))).AsInt16();
                }
                else
                {
                    sc = Avx2.ConvertToVector256Int16(sub + 16 * j);
                    s0 = Avx2.Shuffle(sc.AsByte(), first).AsInt16();
                    s1 = Avx2.Shuffle(sc.AsByte(), second).AsInt16();
                }
                if (offset != 0)
                {
                    o += Avx2.MultiplyAddAdjacent(sc, SumPair(xSums16, j));
                    if (two) oB += Avx2.MultiplyAddAdjacent(sc, SumPair(xSumsB, j));
                }
                var p0 = TK.Bits == 6 ? Vector256.Load(wj + 128).AsUInt16() : default;
                var p1 = TK.Bits == 6 ? Vector256.Load(wj + 160).AsUInt16() : default;
                // Unrolled by hand (the JIT leaves loops of this size rolled; see Tile).
                ScaledChunks<TN>(0, wj, xj, xb, p0, p1, t0, t1, t2, t3, s0, s1, ref i0, ref i1, ref iB0, ref iB1);
                ScaledChunks<TN>(1, wj, xj, xb, p0, p1, t0, t1, t2, t3, s0, s1, ref i0, ref i1, ref iB0, ref iB1);
                ScaledChunks<TN>(2, wj, xj, xb, p0, p1, t0, t1, t2, t3, s0, s1, ref i0, ref i1, ref iB0, ref iB1);
                ScaledChunks<TN>(3, wj, xj, xb, p0, p1, t0, t1, t2, t3, s0, s1, ref i0, ref i1, ref iB0, ref iB1);
            }
            var d = BlockScale(p, 0);
            var isum = i0 + i1;
            if (offset != 0) isum += o * Vector256.Create(offset);
            acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(isum), d * Vector256.Create(xScales[s]), acc);
            if (two)
            {
                var isumB = iB0 + iB1;
                if (offset != 0) isumB += oB * Vector256.Create(offset);
                accB = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(isumB), d * Vector256.Create(xScales[superBlocks + s]), accB);
            }
        }
        Store(acc, y, rows);
        if (two) Store(accB, y + yStride, rows);
    }

    /// <summary>Chunks k (sub-block 2j, scale pair <paramref name="s0"/>) and k+4 (2j+1, <paramref name="s1"/>) of
    /// 32 columns against token A's (and B's) activations: bytes, or a 4-bit plane (6-bit codes' high bits from p0/p1,
    /// or looked up in the kind's table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaledChunks<TN>(int k, byte* wj, sbyte* xj, sbyte* xb, Vector256<ushort> p0, Vector256<ushort> p1,
        Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3, Vector256<short> s0, Vector256<short> s1,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> iB0, ref Vector256<int> iB1) where TN : struct, IConstant
    {
        Vector256<byte> c0, c1;
        if (TK.Bits == 8) { c0 = Vector256.Load(wj + 32 * k); c1 = Vector256.Load(wj + 32 * (k + 4)); }
        else
        {
            Codes4(k, wj, p0, p1, out c0, out c1);
            c0 = Low(c0, t0, t1, t2, t3);
            c1 = Low(c1, t0, t1, t2, t3);
        }
        i0 += Avx2.MultiplyAddAdjacent(Pairs(c0, X(xj, k)), s0);
        i1 += Avx2.MultiplyAddAdjacent(Pairs(c1, X(xj, k + 4)), s1);
        if (TN.Value == 2)
        {
            iB0 += Avx2.MultiplyAddAdjacent(Pairs(c0, X(xb, k)), s0);
            iB1 += Avx2.MultiplyAddAdjacent(Pairs(c1, X(xb, k + 4)), s1);
        }
    }

    /// <summary>The int16 pair products of a code vector with activations: <see cref="IDotProduct.Pairs"/>, or for a
    /// <see cref="SignedTable"/> (entries already signed) the sign trick without its bias flip — the same integers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Pairs(Vector256<byte> c, Vector256<sbyte> x) =>
        SignedTable ? Avx2.MultiplyAddAdjacent(Avx2.Abs(c.AsSByte()), Avx2.Sign(x, c.AsSByte())) : TD.Pairs(c, x);
}
