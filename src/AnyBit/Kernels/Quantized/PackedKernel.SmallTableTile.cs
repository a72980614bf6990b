using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// 4-bit indices into tables of small entries (E2M1 books: MXFP4, mxfp4_e2m1, e2m1 groups), four or eight tokens × 8
// rows on AVX2 without VNNI: prompt processing's tile (SmallTableTokens in PackedKernel.Tiles.cs says when).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// <typeparamref name="TN"/> (4 or 8) tokens × one group of <see cref="SmallTableTokens"/> indices. Per block the 8
    /// code vectors are looked up once (four loads, eight vpshufb) and meet every token's activations. Per token the
    /// eight chunks' products go into one vector of int16 pairs: lane pair r holds row r's Σ entry·x over the columns
    /// 4k, 4k+1 (even lane) and 4k+2, 4k+3 (odd lane); adding offset·Σx of the same columns
    /// (<see cref="QuantizedActivations.LaneSums"/>) leaves Σ (entry + offset)·x in each lane, at most 16·16·127 = 32512
    /// (exact, though the sums before it may wrap), and one vpmaddwd widens the pair to the row's isum. Then
    /// isum·(d·dx) is fused into the row's sum: <see cref="Tile{TN}"/>'s integers and float operations, so the same
    /// bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SmallTableTile<TN>(byte* w, int superBlocks, sbyte* x, float* xScales, int* xLaneSums, float* y, int rows, int yStride)
        where TN : struct, IConstant
    {
        // Statics first, before any vector is live (see Tile).
        byte* tables = (byte*)TK.Tables;
        int blockStride = BlockStride, e8m0Shift = TK.E8M0Shift;
        // Token u's codes, scales and lane sums are u strides on (pointer-sized, so that they fold into the addressing).
        nint xStride = superBlocks * 32, sumStride = superBlocks * sizeof(int), scaleStride = superBlocks * sizeof(float);
        byte* sums = (byte*)xLaneSums, scales = (byte*)xScales;
        var table = Vector256.Load(tables); // TableLookup's 16-entry form: the entries in both 128-bit lanes
        var offset = Vector256.Create((short)TK.Offset);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += 32, sums += sizeof(int), scales += sizeof(float))
        {
            if (Sse.IsSupported) // (x86 only; a constant for the JIT) as Tile: the first tokens read the group from memory
            {
                Prefetch(w + PrefetchDistance);
                Prefetch(w + PrefetchDistance + 64);
            }
            var low = Vector256.Create((byte)0x0F);
            var v0 = Vector256.Load(w);
            var v1 = Vector256.Load(w + 32);
            var v2 = Vector256.Load(w + 64);
            var v3 = Vector256.Load(w + 96);
            // e[k]: the entries of chunk k (vector k's low nibbles for k < 4, vector k−4's high nibbles after).
            var e0 = Avx2.Shuffle(table, v0 & low);
            var e1 = Avx2.Shuffle(table, v1 & low);
            var e2 = Avx2.Shuffle(table, v2 & low);
            var e3 = Avx2.Shuffle(table, v3 & low);
            var e4 = Avx2.Shuffle(table, Vector256.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & low);
            var e5 = Avx2.Shuffle(table, Vector256.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & low);
            var e6 = Avx2.Shuffle(table, Vector256.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & low);
            var e7 = Avx2.Shuffle(table, Vector256.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & low);
            var d = BlockScale(w + 128, e8m0Shift);
            a0 = TableToken(a0, e0, e1, e2, e3, e4, e5, e6, e7, x, sums, offset, d, scales);
            a1 = TableToken(a1, e0, e1, e2, e3, e4, e5, e6, e7, x + xStride, sums + sumStride, offset, d, scales + scaleStride);
            a2 = TableToken(a2, e0, e1, e2, e3, e4, e5, e6, e7, x + 2 * xStride, sums + 2 * sumStride, offset, d, scales + 2 * scaleStride);
            a3 = TableToken(a3, e0, e1, e2, e3, e4, e5, e6, e7, x + 3 * xStride, sums + 3 * sumStride, offset, d, scales + 3 * scaleStride);
            if (TN.Value == 8)
            {
                a4 = TableToken(a4, e0, e1, e2, e3, e4, e5, e6, e7, x + 4 * xStride, sums + 4 * sumStride, offset, d, scales + 4 * scaleStride);
                a5 = TableToken(a5, e0, e1, e2, e3, e4, e5, e6, e7, x + 5 * xStride, sums + 5 * sumStride, offset, d, scales + 5 * scaleStride);
                a6 = TableToken(a6, e0, e1, e2, e3, e4, e5, e6, e7, x + 6 * xStride, sums + 6 * sumStride, offset, d, scales + 6 * scaleStride);
                a7 = TableToken(a7, e0, e1, e2, e3, e4, e5, e6, e7, x + 7 * xStride, sums + 7 * sumStride, offset, d, scales + 7 * scaleStride);
            }
        }
        Store(a0, y, rows);
        Store(a1, y + yStride, rows);
        Store(a2, y + 2 * yStride, rows);
        Store(a3, y + 3 * yStride, rows);
        if (TN.Value == 8)
        {
            Store(a4, y + 4 * yStride, rows);
            Store(a5, y + 5 * yStride, rows);
            Store(a6, y + 6 * yStride, rows);
            Store(a7, y + 7 * yStride, rows);
        }
    }

    /// <summary>One token's block (see <see cref="SmallTableTile{TN}"/>): its isum, then isum·(d·dx) into <paramref name="acc"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> TableToken(Vector256<float> acc, Vector256<byte> e0, Vector256<byte> e1, Vector256<byte> e2, Vector256<byte> e3,
        Vector256<byte> e4, Vector256<byte> e5, Vector256<byte> e6, Vector256<byte> e7, sbyte* x, byte* laneSums, Vector256<short> offset,
        Vector256<float> d, byte* xScale)
    {
        // Two chains of products, so that each activation broadcast is used as soon as it is loaded. Each int16 lane
        // sums entry·x (entries ≤ 32: a pair at most 2·32·127, never saturating) and may wrap before the offset joins.
        var p = Avx2.MultiplyAddAdjacent(e0, X(x, 0));
        var q = Avx2.MultiplyAddAdjacent(e4, X(x, 4));
        p += Avx2.MultiplyAddAdjacent(e1, X(x, 1));
        q += Avx2.MultiplyAddAdjacent(e5, X(x, 5));
        p += Avx2.MultiplyAddAdjacent(e2, X(x, 2));
        q += Avx2.MultiplyAddAdjacent(e6, X(x, 6));
        p += Avx2.MultiplyAddAdjacent(e3, X(x, 3));
        q += Avx2.MultiplyAddAdjacent(e7, X(x, 7));
        p += q + Avx2.MultiplyLow(Vector256.Create(*(int*)laneSums).AsInt16(), offset);
        var isum = Avx2.MultiplyAddAdjacent(p, Vector256<short>.One);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(isum), d * Vector256.Create(*(float*)xScale), acc);
    }
}
