using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// Prompt processing's tile for 8-bit codes up to 255 (Q8_0's q + 128, mxint8) on AVX-512 CPUs without VNNI:
    /// <see cref="TileX2{TN, TS}"/>'s sign trick (<see cref="Avx2SignedDot"/>) needs vpsignb, which has no EVEX form, so
    /// the JIT moved every operand into the first 16 registers and spilled (a third of the tile's instructions were
    /// moves). Here codes and activations are widened to int16 once (the code vector for four tokens, the activations
    /// once per block) and each product is one 512-bit vpmaddwd: no sign step, no int16 saturation to avoid.
    /// </summary>
    private static bool WordTile => TK.Bits == 8 && TD.CodeBias != 0 && Avx512BW.IsSupported; // within FourTokenSixteenRowTile (AVX-512VL)

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
