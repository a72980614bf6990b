using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// Prompt processing's 16-row × 4-token tile for Q4_0 in 512-bit registers: .NET 10 has no 512-bit vpdpbusd, so
    /// <see cref="TileX2{TN, TS}"/> multiplies 32 bytes per instruction; here one vpmaddubsw takes both groups'
    /// 64 code bytes (group 2i's rows in the low half, 2i+1's in the high) and their int16 pair sums are added over
    /// the block's 8 chunks (at most 8·2·15·127 = 30480) before one vpmaddwd widens them — a register of 16 rows
    /// throughout, so unpacking, the offset term and the float epilogue run once for both groups. Zen 5 (AVX-VNNI),
    /// against TileX2's VNNI tile, in-process alternation: one thread, 32 tokens, +18 to +22 %; 2 threads, 64 tokens,
    /// +18 % (8 of 8); the synthetic 1B Q4_0 file's 128-token prefill +15 % (10 of 10). Taken on AMD CPUs with
    /// AVX-512; Intel's (VNNI tile tuned there, this one not measured) keep TileX2.
    /// </summary>
    private static bool PairsTile512 =>
        TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasLut && !TK.HasMins && !TK.E8M0
        && TK.HalfScale && Avx512BW.IsSupported && !CpuVendor.IsIntel;

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
    /// offset·(Σ16 + Σ16') of a 32-value block in every lane: one int16 multiply-add of the block's two Σ16 against
    /// the kind's offset. The 512-bit kernels use vpmaddubsw directly, not <typeparamref name="TD"/>, so no
    /// <see cref="IDotProduct.CodeBias"/> enters here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> OffsetTerm512(short* xSums16) =>
        Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(int*)xSums16).AsInt16(), Vector512.Create((short)TK.Offset));
}
