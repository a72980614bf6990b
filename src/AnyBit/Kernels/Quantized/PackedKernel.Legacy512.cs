using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// The legacy kinds' four-token 16-row tiles in 512-bit registers: Q4_0 through int16 pair sums (TileX2Pairs512), and
// 8-bit codes as int16 products where there is no VNNI (TileX2Words). When each runs: PackedKernel.Tiles.cs.
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// Four tokens × two groups of <see cref="PairsTile512"/>: per token the block's Σ code·x of each of the 16 rows
    /// exactly, plus offset·Σx, then isum·(d·dx) as one fused multiply-add per row — <see cref="TileX2{TN, TS}"/>'s
    /// integers and float operations, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileX2Pairs512(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride)
    {
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int xStride = superBlocks * 32, sumStride = xStride / 16;
        sbyte* xa = x, xb = x + xStride, xc = x + 2 * xStride, xd = x + 3 * xStride;
        short* sa = xSums16, sb = xSums16 + sumStride, sc = xSums16 + 2 * sumStride, sd = xSums16 + 3 * sumStride;
        float* da = xScales, db = xScales + superBlocks, dc = xScales + 2 * superBlocks, dd = xScales + 3 * superBlocks;
        var low = Vector512.Create((byte)0x0F);
        Vector512<float> fA = default, fB = default, fC = default, fD = default; // rows 0-15, tokens A-D
        for (int s = 0; s < superBlocks; s++, w += blockStride)
        {
            byte* v = w + blockBytes;
            Vector512<short> pA = default, pB = default, pC = default, pD = default;
            Step(w, v, 0, low, xa, xb, xc, xd, ref pA, ref pB, ref pC, ref pD);
            Step(w, v, 1, low, xa, xb, xc, xd, ref pA, ref pB, ref pC, ref pD);
            Step(w, v, 2, low, xa, xb, xc, xd, ref pA, ref pB, ref pC, ref pD);
            Step(w, v, 3, low, xa, xb, xc, xd, ref pA, ref pB, ref pC, ref pD);
            var d = Vector512.Create(BlockScale(w + 128, -1), BlockScale(v + 128, -1));
            fA = Finish512(fA, pA, sa, d, *da);
            fB = Finish512(fB, pB, sb, d, *db);
            fC = Finish512(fC, pC, sc, d, *dc);
            fD = Finish512(fD, pD, sd, d, *dd);
            xa += 32; xb += 32; xc += 32; xd += 32;
            sa += 2; sb += 2; sc += 2; sd += 2;
            da++; db++; dc++; dd++;
        }
        Store16(fA, y, rows);
        Store16(fB, y + yStride, rows);
        Store16(fC, y + 2 * yStride, rows);
        Store16(fD, y + 3 * yStride, rows);
    }

    /// <summary>Vector k of both groups' 4-bit planes (chunks k and k+4) against each token's activations, into
    /// the tokens' int16 pair sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(byte* w, byte* v, int k, Vector512<byte> low, sbyte* xa, sbyte* xb, sbyte* xc, sbyte* xd,
        ref Vector512<short> pA, ref Vector512<short> pB, ref Vector512<short> pC, ref Vector512<short> pD)
    {
        var codes = Vector512.Create(Vector256.Load(w + 32 * k), Vector256.Load(v + 32 * k));
        var lo = codes & low;
        var hi = Vector512.ShiftRightLogical(codes.AsUInt16(), 4).AsByte() & low;
        pA += Pairs(lo, hi, xa, k);
        pB += Pairs(lo, hi, xb, k);
        pC += Pairs(lo, hi, xc, k);
        pD += Pairs(lo, hi, xd, k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Pairs(Vector512<byte> lo, Vector512<byte> hi, sbyte* x, int k) =>
        Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 4 * k)).AsSByte())
        + Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 4 * k + 16)).AsSByte());

    /// <summary>One token's block into its 16 rows' float sums: the pair sums widened, the offset term added,
    /// then isum·(d·dx).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish512(Vector512<float> f, Vector512<short> pairs, short* xSums16, Vector512<float> d, float xScale)
    {
        var isum = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One) + OffsetTerm512(xSums16);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(isum), d * Vector512.Create(xScale), f);
    }

    /// <summary>
    /// Four tokens × two groups of 8-bit codes, as int16 products: Σ code·x exactly (pairs of at most 2·255·127 into
    /// int32), then the kind's offset·Σx, then <see cref="TileX2{TN, TS}"/>'s fused multiply-add per row and token —
    /// the same integers and float operations, so the same bits. Lane 2r + h of an int32 sum holds row r's columns
    /// 4c + 2h and 4c + 2h + 1 of each chunk c; one permute pair per (token, block) folds the halves and puts the
    /// two groups' rows side by side, so the float work runs on 16 rows at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TileX2Words(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride)
    {
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int e8m0Shift = TK.E8M0Shift;
        int xStride = superBlocks * sb, sumStride = xStride / 16;
        // One 32-column step's activations of the four tokens as int16, read back as broadcasts of 4 (one chunk).
        var words = stackalloc short[4 * 32];
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odd = even + Vector512<int>.One;
        Vector512<float> fA = default, fB = default, fC = default, fD = default; // rows 0-15, tokens A-D
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            byte* v = w + blockBytes;
            Vector512<int> a = default, b = default, c = default, d = default, a1 = default, b1 = default, c1 = default, d1 = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits, vj = v + j * 32 * TK.Bits;
                WidenActivations(x + 32 * j, xStride, words);
                Chunk(wj, vj, words, 0, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 1, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 2, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 3, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 4, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 5, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 6, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
                Chunk(wj, vj, words, 7, ref a, ref b, ref c, ref d, ref a1, ref b1, ref c1, ref d1);
            }
            var scales = Vector512.Create(BlockScale(w + codeBytes, e8m0Shift), BlockScale(v + codeBytes, e8m0Shift));
            fA = FinishWords(fA, a, a1, even, odd, xSums16, scales, xScales[s]);
            fB = FinishWords(fB, b, b1, even, odd, xSums16 + sumStride, scales, xScales[superBlocks + s]);
            fC = FinishWords(fC, c, c1, even, odd, xSums16 + 2 * sumStride, scales, xScales[2 * superBlocks + s]);
            fD = FinishWords(fD, d, d1, even, odd, xSums16 + 3 * sumStride, scales, xScales[3 * superBlocks + s]);
        }
        Store16(fA, y, rows);
        Store16(fB, y + yStride, rows);
        Store16(fC, y + 2 * yStride, rows);
        Store16(fD, y + 3 * yStride, rows);
    }

    /// <summary>The four tokens' 32 activations at <paramref name="x"/> (token t's <paramref name="xStride"/> · t on)
    /// as int16, token t's at <paramref name="words"/> + 32·t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenActivations(sbyte* x, int xStride, short* words)
    {
        Avx512BW.ConvertToVector512Int16(Vector256.Load(x)).Store(words);
        Avx512BW.ConvertToVector512Int16(Vector256.Load(x + xStride)).Store(words + 32);
        Avx512BW.ConvertToVector512Int16(Vector256.Load(x + 2 * xStride)).Store(words + 64);
        Avx512BW.ConvertToVector512Int16(Vector256.Load(x + 3 * xStride)).Store(words + 96);
    }

    /// <summary>Chunk k (columns 4k to 4k+3) of both groups' codes, widened once, against each token's four int16
    /// activations broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Chunk(byte* wj, byte* vj, short* words, int k,
        ref Vector512<int> a, ref Vector512<int> b, ref Vector512<int> c, ref Vector512<int> d,
        ref Vector512<int> a1, ref Vector512<int> b1, ref Vector512<int> c1, ref Vector512<int> d1)
    {
        var cw = Avx512BW.ConvertToVector512Int16(Vector256.Load(wj + 32 * k));
        var cv = Avx512BW.ConvertToVector512Int16(Vector256.Load(vj + 32 * k));
        var xa = Vector512.Create(*(long*)(words + 4 * k)).AsInt16();
        a += Avx512BW.MultiplyAddAdjacent(cw, xa); a1 += Avx512BW.MultiplyAddAdjacent(cv, xa);
        var xb = Vector512.Create(*(long*)(words + 32 + 4 * k)).AsInt16();
        b += Avx512BW.MultiplyAddAdjacent(cw, xb); b1 += Avx512BW.MultiplyAddAdjacent(cv, xb);
        var xc = Vector512.Create(*(long*)(words + 64 + 4 * k)).AsInt16();
        c += Avx512BW.MultiplyAddAdjacent(cw, xc); c1 += Avx512BW.MultiplyAddAdjacent(cv, xc);
        var xd = Vector512.Create(*(long*)(words + 96 + 4 * k)).AsInt16();
        d += Avx512BW.MultiplyAddAdjacent(cw, xd); d1 += Avx512BW.MultiplyAddAdjacent(cv, xd);
    }

    /// <summary>
    /// One token's block into its 16 rows' float sums: each row's two half sums added (rows 0-7 from
    /// <paramref name="a"/>, 8-15 from <paramref name="a1"/>), plus the kind's offset·Σx (the codes went in as stored,
    /// unbiased), then isum·(d·dx) as one fused multiply-add, as <see cref="Finish"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FinishWords(Vector512<float> f, Vector512<int> a, Vector512<int> a1, Vector512<int> even, Vector512<int> odd,
        short* xSums16, Vector512<float> scales, float xScale)
    {
        var sums = Avx512F.PermuteVar16x32x2(a, even, a1) + Avx512F.PermuteVar16x32x2(a, odd, a1) + Vector512.Create(TK.Offset * BlockSum(xSums16));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(sums), scales * Vector512.Create(xScale), f);
    }
}
