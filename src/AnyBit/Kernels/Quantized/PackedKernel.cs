using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The SIMD kernel: y[r] = Σ_k W[r, k]·x[k] for one group of 8 rows of a <see cref="PackedMatrix"/> and one or two
/// tokens of <see cref="QuantizedActivations"/>. Per super-block the integer sums of all 8 rows advance together
/// (lane r = row r), then each lane adds isum·(d·dx) and subtracts imin·(dmin·dx) each as one fused multiply-add —
/// the same float operations in the same order as <see cref="ReferenceKernel"/>, so both give identical bits.
/// </summary>
internal static unsafe partial class PackedKernel<TK, TD> where TK : struct, IKindTraits where TD : struct, IDotProduct
{
    /// <summary>
    /// One or two tokens: with two, each code vector is unpacked (and looked up) once and meets both tokens'
    /// activations — prompt processing's register tile. Token t+1's activations follow token t's (strides of one
    /// row of codes, scales and sums); its outputs go <paramref name="yStride"/> floats after token t's.
    /// </summary>
    public static void Group(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int tokens, int yStride)
    {
        if (rows > PackedMatrix.GroupRows)
        {
            // Two adjacent groups (16 rows, the second possibly padded): one tile where the kind has it, else each
            // group on its own.
            if (SixteenRowTile)
            {
                if (tokens == 4 && FourTokenSixteenRowTile)
                {
                    if (PairsTile512) TileX2Pairs512(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    else if (WordTile) TileX2Words(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    else if (PairSums) TileX2<C4, NibblePairsX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    else TileX2<C4, NibbleX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    return;
                }
                if (tokens == 4 && TK.Layout == SubScaleLayout.ScaleMin32)
                {
                    if (PairSums) TileX2K<NibblePairsX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    else TileX2K<NibbleX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    return;
                }
                if (tokens == 1)
                {
                    // One family of code layout per method (the JIT would otherwise inline every family's code and
                    // run out of registers and inlining budget): see Decode16.
                    if (HighNibblesInPlace) Decode16Nibbles(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (FourTokenSixteenRowTile)
                    {
                        if (PairSums) TileX2<C1, NibblePairsX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                        else TileX2<C1, NibbleX2>(w, superBlocks, x, xScales, xSums16, y, rows, yStride);
                    }
                    else if (TK.Layout == SubScaleLayout.ScaleMin32)
                    {
                        if (PairSums) Decode16K<NibblePairStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                        else Decode16K<NibbleStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    }
                    else if (K16Crumbs) Decode16KCrumbs(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (TK.Layout == SubScaleLayout.Signed16) Decode16Q6(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (TK.Bits == 8) Decode16<ByteStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (SmallTable512) Decode16SmallTable512(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (TK.Bits >= 4) Decode16<NibbleStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    else Decode16<CrumbStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    return;
                }
            }
            // The second group's first super-block: the next block where groups are paired, else a group's bytes on.
            long second = PairedGroups ? BlockBytes : (long)superBlocks * BlockBytes;
            Group(w, superBlocks, x, xScales, xSums16, y, PackedMatrix.GroupRows, tokens, yStride);
            Group(w + second, superBlocks, x, xScales, xSums16, y + PackedMatrix.GroupRows, rows - PackedMatrix.GroupRows, tokens, yStride);
            return;
        }
        if (tokens == 4 && FourTokenTile) { Tile4(w, superBlocks, x, xScales, xSums16, y, rows, yStride); return; }
        if (tokens == 1 && CrumbsInPlace) { Decode8Crumbs(w, superBlocks, x, xScales, xSums16, y, rows); return; }
        // Any other count as pairs and a single: token u's activations are u rows of codes, scales and sums on.
        int xStride = superBlocks * TK.SuperBlock;
        for (int u = 0; u < tokens; u += 2)
        {
            sbyte* xu = x + (long)u * xStride;
            float* su = xScales + u * superBlocks;
            short* cu = xSums16 + u * (xStride / 16);
            if (tokens - u >= 2) Tile<C2>(w, superBlocks, xu, su, cu, y + u * yStride, rows, yStride);
            else Tile<C1>(w, superBlocks, xu, su, cu, y + u * yStride, rows, 0);
        }
    }

    /// <summary>
    /// Four tokens per tile where it measured faster: 4- to 8-bit codes without tables or mins, on CPUs with
    /// AVX-512's 32 vector registers (eight row sums, four super-block sums and four float accumulators live at
    /// once; AVX2's 16 would spill them). Single thread, weights in cache, 32 tokens, against the pair tile: Q6_K
    /// and Q5_0 +23 %, Q8_0 +8 %, Q4_0 +4 %; Q4_K (mins: four more sums live) ±0 to −6 %, 2-bit Q2_K −8 % and
    /// TQ2_0 −1 % (their unpacking is already shared by two tokens and the extra sums cost more) — those keep pairs,
    /// as do table kinds, which hold their tables in registers.
    /// </summary>
    private static bool FourTokenTile => !TK.HasLut && !TK.HasMins && TK.Bits >= 4 && Avx512F.VL.IsSupported;

    /// <summary>
    /// Bytes ahead of the codes being read that each 32-column step asks the cache to fetch. Decode streams every
    /// weight from memory once; the hardware prefetcher alone left K-quant decode short of the bandwidth the simpler
    /// formats reach (2 threads, weights out of cache, best of 6: Q4_K 45 → 50-52 GB/s, Q2_K 30 → 33, Q3_K 33 → 35;
    /// Q4_0 and Q6_K unchanged; 4 KiB and 8 KiB alike, 16 KiB worse).
    /// </summary>
    private const int PrefetchDistance = 8192;

    /// <summary>
    /// The 8-row tile's prefetches bring lines into L1 for Q4_K/Q5_K and for the kinds whose decode runs this tile on
    /// AVX-512 machines too (the unpaired ones: TQ2_0/TQ1_0, int2, Q4_1, Q5_1), into L2 for every other kind. Measured
    /// per kind on the AMD EPYC VM (2 threads, 5632×2048 from memory, six alternating rounds, 8-row decodes all):
    /// into L2 instead of L1, Q4_0 +12 %, Q6_K +6 %, Q8_0 +5 %, Q2_K +5 %, Q3_K +2 %, TQ2_0/IQ4_NL/Q4_1 ±0 — but Q4_K
    /// −10 % and Q5_K −4 %. On the Intel Sapphire Rapids VM (16 alternations in one process), into L1 instead of
    /// L2: TQ2_0 +7 to +8 % (ahead in 13 and 16 of 16 rounds), int2:g128 +6 %, Q5_1 +5 %, Q4_1 +2 %.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p)
    {
        if (TK.Layout == SubScaleLayout.ScaleMin32 || !PairedGroups) Sse.Prefetch0(p);
        else Sse.Prefetch1(p);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TN>(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int yStride) where TN : struct, IConstant
    {
        // Statics first, before any vector is live: a class-initialisation call after that point makes the register
        // allocator keep the accumulators in memory for the whole method (measured: table kinds ran at half speed).
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
                    // Unrolled by hand: the JIT no longer unrolls a loop this size, and the loop cost a third of
                    // Q4_0's speed (measured).
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
    /// The codes of chunks k, k+2, k+4 and k+6 from vector k of a 2-bit plane, with 3-bit codes' third bits from the
    /// bit plane <paramref name="third"/> (bit c is chunk c's).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Codes2(int k, byte* wj, Vector256<ushort> third, out Vector256<byte> c0, out Vector256<byte> c2, out Vector256<byte> c4, out Vector256<byte> c6)
    {
        var v = Vector256.Load(wj + 32 * k);
        c0 = v & Vector256.Create((byte)0x03);
        c2 = ByteFields.Extract(v, 2, 2, 0);
        c4 = ByteFields.Extract(v, 4, 2, 0);
        c6 = ByteFields.Extract(v, 6, 2, 0);
        if (TK.Bits == 3)
        {
            // chunk c's third bit is bit c of the bit plane; it becomes bit 2 of the code.
            var t = third.AsByte();
            c0 |= ByteFields.Extract(t, k, 1, 2);
            c2 |= ByteFields.Extract(t, k + 2, 1, 2);
            c4 |= ByteFields.Extract(t, k + 4, 1, 2);
            c6 |= ByteFields.Extract(t, k + 6, 1, 2);
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
    /// The codes of chunks k and k+4 from vector k of a 4-bit plane, with their fifth or fifth-and-sixth bits from
    /// the planes p0/p1 for 5- and 6-bit kinds.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Codes4(int k, byte* wj, Vector256<ushort> p0, Vector256<ushort> p1, out Vector256<byte> c0, out Vector256<byte> c1)
    {
        if (TK.HasLut && TK.Bits == 6 && TD.Vbmi) { Indices6(k, wj, p0, p1, out c0, out c1); return; }
        var low4 = Vector256.Create((byte)0x0F);
        var v = Vector256.Load(wj + 32 * k);
        c0 = v & low4;
        // A shift and a mask here, not ByteFields' one affine transform: for a nibble that measured 3-6 % slower
        // (Q4_0, Q4_K single-thread decode, best of 6) — the transform competes with the dot products for their ports.
        c1 = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4;
        if (TK.Bits == 6)
        {
            // chunk k's high bits sit at shift 2·(k/2) of plane k%2, chunk k+4's at 2·(k/2)+4; they become bits 4-5.
            var plane = (k % 2 == 0 ? p0 : p1).AsByte();
            c0 |= ByteFields.Extract(plane, 2 * (k / 2), 2, 4);
            c1 |= ByteFields.Extract(plane, 2 * (k / 2) + 4, 2, 4);
        }
        else if (TK.Bits == 5)
        {
            // chunk c's fifth bit is bit c of the bit plane; it becomes bit 4 of the code.
            c0 |= ByteFields.Extract(p0.AsByte(), k, 1, 4);
            c1 |= ByteFields.Extract(p0.AsByte(), k + 4, 1, 4);
        }
    }

    /// <summary>
    /// <see cref="Codes4"/> for 6-bit indices into a 64-entry table read by vpermi2b, which looks at bits 0-5 of each
    /// index byte only: the nibble and the plane's two bits, moved to bits 4-5 by one 16-bit shift (each byte's bits
    /// 4-5 come from its own bits), meet in one bitwise select (vpternlogd), and bits 6-7 keep whatever the shifts
    /// left there. Five instructions for two vectors of indices where the masks and GFNI transforms took seven. Zen 5,
    /// in-process alternation: MXFP6 decode in cache +10 to +12 %, from memory E3M2 +8 %, E2M3 level.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Indices6(int k, byte* wj, Vector256<ushort> p0, Vector256<ushort> p1, out Vector256<byte> c0, out Vector256<byte> c1)
    {
        var v = Vector256.Load(wj + 32 * k);
        var plane = k % 2 == 0 ? p0 : p1;
        // Chunk k's two bits sit at 2·(k/2) of its plane, chunk k+4's at 2·(k/2) + 4 (see Codes4).
        var high0 = k / 2 == 0 ? Vector256.ShiftLeft(plane, 4) : Vector256.ShiftLeft(plane, 2);
        var high1 = k / 2 == 0 ? plane : Vector256.ShiftRightLogical(plane, 2);
        var top = Vector256.Create((byte)0xF0);
        c0 = Vector256.ConditionalSelect(top, high0.AsByte(), v);
        c1 = Vector256.ConditionalSelect(top, high1.AsByte(), Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte());
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

    /// <summary>
    /// Sixteen rows (two groups) where it measured faster: kinds whose only whole-block correction is the code
    /// offset (Q4_0, Q5_0, Q8_0). Each activation broadcast then feeds two groups' dot products and each token's
    /// offset term and scale are read once for both, where the one-group tile spent as many instructions on those
    /// (and on its 32-value epilogue) as on the dot products themselves.
    /// </summary>
    private static bool SixteenRowTile => PairedGroups && Avx512F.VL.IsSupported;

    /// <summary>The 16-row tiles of <see cref="TileX2{TN, TS}"/>, one and four tokens: whole-block offset only, 4-, 5- or
    /// 8-bit codes without tables (Q4_0, Q5_0, Q8_0, mxint8). The other paired kinds decode with <see cref="Decode16{TS}"/>.</summary>
    private static bool FourTokenSixteenRowTile => SixteenRowTile && TK.Layout == SubScaleLayout.None && !TK.HasLut && TK.Bits is 4 or 5 or 8;

    /// <summary>The layout of <see cref="PackedKind.PairedGroups"/>, for the kinds with a 16-row tile.</summary>
    private static bool PairedGroups { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.PairedGroups; }

    /// <summary>Q2_K and Q3_K: 2- and 3-bit codes with 16-value sub-scales, decoded 16 rows at once (Decode16KCrumbs).</summary>
    private static bool K16Crumbs => TK.Bits <= 3 && TK.Layout is SubScaleLayout.PackedScaleMin16 or SubScaleLayout.Signed16;

    /// <summary>From one super-block of a group to its next: two blocks where groups are stored in pairs.</summary>
    private static int BlockStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.BlockStride; }

    private static int BlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.BlockBytes; }

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
            // Decode prefetches every line of the pair a distance ahead (PrefetchPair). On the AMD EPYC VM the hardware
            // prefetcher alone was as fast or faster (2 threads, 5632×2048 from memory, 24 alternations in one
            // process: without, Q8_0 +5 %, Q5_0 +8 %, mxint8 +11 %, Q4_0 −3 to +0.5 %); on the Intel Sapphire Rapids
            // VM, the same test the other way round: with, Q4_0 +18 % (ahead in 24 of 24 rounds), Q8_0 +10 %, Q5_0
            // +9 %, mxint8 +6 %. Weights in cache, one thread, it costs Q4_0 11 % (five prefetches per 32 columns),
            // but a decode streams its weights from memory. One line per pair, or one per 128 bytes, lost most of it.
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
                // and TileX2). Only this step's codes, as before, left up to a third of a pair's lines to the
                // hardware prefetcher: 2 threads from memory, 24 alternations in one process, int8:g32 +15 %,
                // int3:g64 +2 %, 4- and 6-bit kinds (int4, NF4, IQ4_NL, MX) −1 to +0.4 %, within the noise.
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
                    // prefetches into L1. 2 threads, 5632×2048 from memory, GB/s against the 8-row tile, alternating:
                    // into L2 +12/+8/+2 %, into L1 −2 to −10 %, each group's codes only (no scales) −45 %.
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

    /// <summary>
    /// Prefetches into L2 (L1 on Intel CPUs: <see cref="PrefetchLevel"/>) the <paramref name="bytes"/> (at most 640, a
    /// JIT-time constant) at <paramref name="p"/>:
    /// one line per 64 bytes, so that consecutive steps' prefetches are never more than a line apart. The 16-row
    /// decodes call it with an even share of the pair's bytes per 32-column step, a distance ahead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchPair(byte* p, int bytes)
    {
        PrefetchLine(p);
        if (bytes > 64) PrefetchLine(p + 64);
        if (bytes > 128) PrefetchLine(p + 128);
        if (bytes > 192) PrefetchLine(p + 192);
        if (bytes > 256) PrefetchLine(p + 256);
        if (bytes > 320) PrefetchLine(p + 320);
        if (bytes > 384) PrefetchLine(p + 384);
        if (bytes > 448) PrefetchLine(p + 448);
        if (bytes > 512) PrefetchLine(p + 512);
        if (bytes > 576) PrefetchLine(p + 576);
    }

    /// <summary>One line of a 16-row decode's weights into the cache <see cref="PrefetchLevel"/> chose.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchLine(byte* p)
    {
        if (PrefetchLevel.IntoL1) Sse.Prefetch0(p);
        else Sse.Prefetch1(p);
    }

    /// <summary>
    /// <see cref="Decode16{TS}"/> for Q6_K, whose 16-column sub-blocks each have a signed 8-bit scale: per step and
    /// group the sums of columns 0-15 and 16-31 apart, each times its sub-scale, plus the offset (−32) times Σ sc·Σx
    /// as one int16-pair multiply-add — <see cref="AddScaled"/>'s steps, then <see cref="Finish"/>'s fused
    /// multiply-add, so the same bits as the 8-row tile. Its own method, written out (see <see cref="Decode16K{TS}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16Q6(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int subAt = codeBytes + PackedKind.ScaleBytesOf(TK.HalfScale); // after d
        int aheadStep = blockStride * 32 / sb;
        var offset = Vector256.Create(Offset);
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
                var p0 = Vector256.Load(wj + 128).AsUInt16();
                var p1 = Vector256.Load(wj + 160).AsUInt16();
                var q0 = Vector256.Load(vj + 128).AsUInt16();
                var q1 = Vector256.Load(vj + 160).AsUInt16();
                // a0/b0: columns 0-15 (chunks 0-3) of each group; a1/b1: columns 16-31 (chunks 4-7).
                Vector256<int> a0 = default, a1 = default, b0 = default, b1 = default;
                Halves(0, wj, vj, xj, p0, p1, q0, q1, ref a0, ref a1, ref b0, ref b1);
                Halves(1, wj, vj, xj, p0, p1, q0, q1, ref a0, ref a1, ref b0, ref b1);
                Halves(2, wj, vj, xj, p0, p1, q0, q1, ref a0, ref a1, ref b0, ref b1);
                Halves(3, wj, vj, xj, p0, p1, q0, q1, ref a0, ref a1, ref b0, ref b1);
                // Lane r of the widened sub-scales: row r's pair (sub-block 2j low, 2j+1 high); see AddScaled.
                var sumPair = SumPair(xSums16, j);
                var sw = Avx2.ConvertToVector256Int16((sbyte*)w + subAt + 16 * j);
                var sv = Avx2.ConvertToVector256Int16((sbyte*)v + subAt + 16 * j);
                a += Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(sw.AsInt32(), 16), 16) * a0 + Vector256.ShiftRightArithmetic(sw.AsInt32(), 16) * a1
                    + Avx2.MultiplyAddAdjacent(sw, sumPair) * offset;
                b += Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(sv.AsInt32(), 16), 16) * b0 + Vector256.ShiftRightArithmetic(sv.AsInt32(), 16) * b1
                    + Avx2.MultiplyAddAdjacent(sv, sumPair) * offset;
            }
            var dx = Vector256.Create(xScales[s]);
            f = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a), HalfWidening.Widen8Finite(w + codeBytes) * dx, f);
            g = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(b), HalfWidening.Widen8Finite(v + codeBytes) * dx, g);
        }
        Store(f, y, 8);
        Store(g, y + 8, rows - PackedMatrix.GroupRows);
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

    /// <summary>Chunks k (into a0, b0) and k+4 (into a1, b1) of both groups' 6-bit codes dotted with the token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Halves(int k, byte* wj, byte* vj, sbyte* xj, Vector256<ushort> p0, Vector256<ushort> p1, Vector256<ushort> q0, Vector256<ushort> q1,
        ref Vector256<int> a0, ref Vector256<int> a1, ref Vector256<int> b0, ref Vector256<int> b1)
    {
        Codes4(k, wj, p0, p1, out var l, out var h);
        Codes4(k, vj, q0, q1, out var m, out var n);
        var xl = X(xj, k);
        var xh = X(xj, k + 4);
        a0 = TD.Accumulate(a0, l, xl);
        b0 = TD.Accumulate(b0, m, xl);
        a1 = TD.Accumulate(a1, h, xh);
        b1 = TD.Accumulate(b1, n, xh);
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
                // chains per group instead of one (2 threads from memory, in-process alternation on Zen 5: IQ4_NL
                // +4 %, int4:g128 +7 %, MXFP4 +2 %; int4:g32 ±0, +7 % in cache).
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
            // Chunks 4-7 into the high sums, which Decode16 adds at the end of the super-block (see NibbleStep): int3
            // +4 to +6 % from memory, +7 % in cache.
            Pair(w0, v0, xj, 0, ref a, ref b); Pair(w2, v2, xj, 2, ref a, ref b); Pair(w4, v4, xj, 4, ref ha, ref hb); Pair(w6, v6, xj, 6, ref ha, ref hb);
            Codes2(1, wj, pw, out var w1, out var w3, out var w5, out var w7); Codes2(1, vj, pv, out var v1, out var v3, out var v5, out var v7);
            Pair(w1, v1, xj, 1, ref a, ref b); Pair(w3, v3, xj, 3, ref a, ref b); Pair(w5, v5, xj, 5, ref ha, ref hb); Pair(w7, v7, xj, 7, ref ha, ref hb);
        }
    }

    /// <summary>offset·Σx over the super-block whose Σ-per-16 start at <paramref name="xSums16"/>, in every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> OffsetTerm(short* xSums16)
    {
        if (Offset == 0) return Vector256<int>.Zero;
        // 32-value blocks: the block's two Σ16 are one int16 pair, offset·(Σ + Σ') one multiply-add (exact: |offset·Σ16|
        // < 2^19) — two instructions instead of two loads, an add, a multiply and a broadcast, per token and block.
        if (TK.SuperBlock == 32) return MultiplyAddPairs(Vector256<int>.Zero, SumPair(xSums16, 0), Vector256.Create((short)Offset));
        return Vector256.Create(Offset * BlockSum(xSums16));
    }

    /// <summary>Σx over the super-block whose Σ-per-16 start at <paramref name="xSums16"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BlockSum(short* xSums16)
    {
        // 256-value super-blocks: one multiply-add of pairs and a horizontal sum. The scalar loop over sixteen Σ16
        // was about a tenth of TQ2_0's decode instructions (a loop the JIT does not unroll, per token and block).
        // The smaller groups of the int formats likewise: the loop (8 iterations at 128) was a fifth of int2:g128's
        // decode instructions.
        if (TK.SuperBlock == 256) return Vector256.Sum(Avx2.MultiplyAddAdjacent(Vector256.Load(xSums16), Vector256<short>.One));
        if (TK.SuperBlock == 128) return Vector128.Sum(Sse2.MultiplyAddAdjacent(Vector128.Load(xSums16), Vector128<short>.One));
        if (TK.SuperBlock == 64) return xSums16[0] + xSums16[1] + xSums16[2] + xSums16[3];
        if (TK.SuperBlock == 32) return xSums16[0] + xSums16[1];
        int total = 0;
        for (int h = 0; h < TK.SuperBlock / 16; h++) total += xSums16[h];
        return total;
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

    /// <summary>
    /// 4-bit codes without tables, on a dot product that is two multiplies (<see cref="IDotProduct.SumsPairs"/>: AVX2
    /// without VNNI): a 32-column step's 8 code vectors per row group and token are summed as int16 pairs (at most
    /// 8·2·15·127 = 30480) and widened once, the same integers with one vpmaddwd per step instead of eight.
    /// </summary>
    private static bool PairSums { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TD.SumsPairs && TK.Bits == 4 && !TK.HasLut; }

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

    /// <summary>One 32-column step of two groups' 4-bit codes against one token, through int16 pair sums
    /// (<see cref="PairSums"/>); adds into a and b. A type of its own, so that each kernel instance inlines one step
    /// (with both in one method the JIT ran out of inlining budget and called its helpers: Q4_K decode −25 %).</summary>
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

    /// <summary>
    /// The offset the kernel applies per Σx: the kind's, plus what <typeparamref name="TD"/> takes off every code
    /// (<see cref="IDotProduct.CodeBias"/>: Σ code·x + o·Σx = Σ (code − b)·x + (o + b)·Σx, the same integers).
    /// </summary>
    private static int Offset { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TK.Offset + TD.CodeBias; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(Vector256<int> h, Vector256<byte> codes, sbyte* x, int chunk) => TD.Accumulate(h, codes, X(x, chunk));

    /// <summary>
    /// isum plus the 32 columns' integer sums with the format's sub-scales (and Q6_K/Q3_K's offset) applied.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> AddScaled(Vector256<int> isum, Vector256<int> h0, Vector256<int> h1, byte* sub, int j, short* xSums16, int offset)
    {
        if (TK.Layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint) return isum + (h0 + h1);
        if (TK.Layout == SubScaleLayout.ScaleMin32) return isum + Avx2.ConvertToVector256Int32(sub + 8 * j) * (h0 + h1);
        // The 16-value layouts keep each row's two sub-blocks of these 32 columns side by side (see PackedMatrix):
        // widened to int16, lane r holds row r's pair — the low half sub-block 2j's byte, the high half 2j+1's.
        if (TK.Layout == SubScaleLayout.PackedScaleMin16)
        {
            var scales = Avx2.ConvertToVector256Int16(sub + 16 * j) & Vector256.Create((short)15);
            if (SumsFitInt16) return MultiplyAddPairs(isum, PackPairs(h0, h1), scales);
            var v = scales.AsInt32();
            return isum + (v & Vector256.Create(0xFFFF)) * h0 + Vector256.ShiftRightLogical(v, 16) * h1;
        }
        var w = Avx2.ConvertToVector256Int16((sbyte*)sub + 16 * j);
        if (SumsFitInt16)
        {
            // offset·Σx joins the sums as int16 before the one multiply-add: |Σ (code + offset)·x| over 16 values
            // fits (Q3_K: 16·4·127), and int16 wrap-around leaves the final value exact.
            var hs = PackPairs(h0, h1);
            if (offset != 0) hs += SumPair(xSums16, j) * Vector256.Create((short)offset);
            return MultiplyAddPairs(isum, hs, w);
        }
        var scaled = Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(w.AsInt32(), 16), 16) * h0 + Vector256.ShiftRightArithmetic(w.AsInt32(), 16) * h1;
        if (offset == 0) return isum + scaled;
        // offset·Σ sc·Σx for both sub-blocks in one multiply-add of int16 pairs (|sc·Σx| < 2^19: exact in int32).
        return isum + scaled + Avx2.MultiplyAddAdjacent(w, SumPair(xSums16, j)) * Vector256.Create(offset);
    }

    /// <summary>
    /// The 16-column sums of codes of at most 3 bits fit int16 (16·7·127 = 14224; with Q3_K's offset folded in,
    /// 16·4·127): two of them packed per lane meet their pair of sub-scales in one int16 multiply-add, instead of
    /// two 32-bit multiplies and two adds.
    /// </summary>
    private static bool SumsFitInt16 { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TK.Bits <= 3 && TK.Layout is SubScaleLayout.PackedScaleMin16 or SubScaleLayout.Signed16; }

    /// <summary>Lane r: h0's low 16 bits, then h1's (both known to fit int16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> PackPairs(Vector256<int> h0, Vector256<int> h1) =>
        Avx2.Blend(h0.AsInt16(), Vector256.ShiftLeft(h1, 16).AsInt16(), 0b1010_1010);

    /// <summary>acc + (a·b of each lane's two int16s, summed): AVX-VNNI's vpdpwssd where present.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MultiplyAddPairs(Vector256<int> acc, Vector256<short> a, Vector256<short> b) =>
        AvxVnni.IsSupported ? AvxVnni.MultiplyWideningAndAdd(acc, a, b) : acc + Avx2.MultiplyAddAdjacent(a, b);

    /// <summary>
    /// imin plus the mins times Σx (K-quants with mins): Q2_K's per 32 columns, Q4_K/Q5_K's for columns 32·j to
    /// 32·j + 63 at even j (nothing at odd j) — one multiply-add of int16 pairs of (min, Σx) per two sub-blocks.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> AddMins(Vector256<int> imin, byte* sub, int j, short* xSums16)
    {
        if (TK.Layout == SubScaleLayout.ScaleMin32)
        {
            if ((j & 1) != 0) return imin;
            short* s = xSums16 + 2 * j;
            return MultiplyAddPairs(imin, Avx2.ConvertToVector256Int16(sub + 64 + 8 * j), Pair(s[0] + s[1], s[2] + s[3]));
        }
        if (TK.Layout == SubScaleLayout.PackedScaleMin16)
            return MultiplyAddPairs(imin, Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int16(sub + 16 * j).AsUInt16(), 4).AsInt16(), SumPair(xSums16, j));
        return imin; // Q4_1/Q5_1: the min counts once per value, applied with the block's Σx in Finish
    }

    /// <summary>Two Σx (each |Σx| ≤ 32·127, so int16) as the int16 pair every lane of a multiply-add meets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Pair(int low, int high) => Vector256.Create((int)(ushort)low | (high << 16)).AsInt16();

    /// <summary>Σx of 16-column runs 2j and 2j+1, adjacent int16s, broadcast as the pair: one 32-bit load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> SumPair(short* xSums16, int j) => Vector256.Create(*(int*)(xSums16 + 2 * j)).AsInt16();

    /// <summary>
    /// Applies the whole-block corrections and adds the super-block to the float sums: isum·(d·dx), then
    /// −imin·(dmin·dx), each as one fused multiply-add, in the reference's order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<float> acc, Vector256<int> isum, Vector256<int> imin, Vector256<float> d, byte* p, short* xSums16, float xScale, int offset)
    {
        if ((TK.Layout == SubScaleLayout.None && (offset != 0 || TK.HasMins)) || TK.Layout == SubScaleLayout.ZeroPoint)
        {
            // Whole-block corrections need Σx over the super-block: the offset for the legacy, ternary and table
            // types, the min of Q4_1/Q5_1, the per-row zero point of the int formats.
            int total = BlockSum(xSums16);
            if (TK.Layout == SubScaleLayout.ZeroPoint)
            {
                isum -= Avx2.ConvertToVector256Int32(p + PackedKind.ScaleBytesOf(TK.HalfScale)) * Vector256.Create(total);
                if (offset != 0) isum += Vector256.Create(offset * total); // the dot product's code bias (int8 codes without VNNI)
            }
            else if (TK.HasMins) imin = Vector256.Create(total);
            else isum += Vector256.Create(offset * total);
        }
        var dx = Vector256.Create(xScale);
        acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(isum), d * dx, acc);
        if (TK.HasMins)
        {
            var dmin = TK.HalfScale ? HalfWidening.Widen8Finite(p + 16) : Vector256.Load((float*)p + 8);
            acc = Vector256.FusedMultiplyAdd(-Vector256.ConvertToSingle(imin), dmin * dx, acc);
        }
        return acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> acc, float* y, int rows)
    {
        if (rows == 8) acc.Store(y);
        else for (int r = 0; r < rows; r++) y[r] = acc[r];
    }

    /// <summary>A 16-row group's sums (the 512-bit kernels'): rows 0-7 always exist, the second 8 only in part
    /// for a matrix whose row count is not a multiple of 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store16(Vector512<float> acc, float* y, int rows)
    {
        Store(acc.GetLower(), y, 8);
        Store(acc.GetUpper(), y + 8, rows - PackedMatrix.GroupRows);
    }

    // Codes go into the dot product as they are, or for table kinds as the entries they index in the tables held in
    // t0..t3 (the high table's, in u0..u3, go into a second sum for wide books). Values in and out, no refs: a ref to
    // an accumulator would keep it in memory.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Low(Vector256<byte> code, Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3) =>
        TK.HasLut ? TableLookup.Lookup(code, TK.Bits, TD.Vbmi, t0, t1, t2, t3) : code;

    /// <summary>
    /// The 8 rows' d of the super-block whose scales start at <paramref name="p"/>: E8M0, f16 or f32 (f16 ones finite:
    /// see <see cref="PackedMatrix.HasNonFiniteScales"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockScale(byte* p, int e8m0Shift) =>
        TK.E8M0 ? (TK.RawExponents ? E8M0Scale(p, e8m0Shift) : BiasedE8M0Scale(p))
        : TK.HalfScale ? HalfWidening.Widen8Finite(p) : Vector256.Load((float*)p);

    /// <summary>
    /// 2^(b − 127) for the 8 rows' bytes b = e − shift, each in 1..254: the byte moved into a float's exponent field,
    /// two instructions where <see cref="E8M0Scale"/> takes nine (mxfp4 decode +20 % in cache, measured).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BiasedE8M0Scale(byte* p) => Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(p), 23).AsSingle();

    /// <summary>
    /// 2^(e − 127 − shift) for the 8 rows' E8M0 bytes at <paramref name="p"/>, built from its bits: a normal float's
    /// exponent field, a subnormal's single mantissa bit (all-zero MX blocks store e = 0), NaN for e = 255 — the
    /// same values the block decoder computes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> E8M0Scale(byte* p, int shift)
    {
        var e = Avx2.ConvertToVector256Int32(p);
        var biased = e - Vector256.Create(shift);
        var normal = Vector256.ShiftLeft(biased, 23);
        var subnormal = Avx2.ShiftLeftLogicalVariable(Vector256<int>.One, (biased + Vector256.Create(22)).AsUInt32());
        var bits = Vector256.ConditionalSelect(Vector256.GreaterThan(biased, Vector256<int>.Zero), normal, subnormal);
        bits = Vector256.ConditionalSelect(Vector256.Equals(e, Vector256.Create(255)), Vector256.Create(BitConverter.SingleToInt32Bits(float.NaN)), bits);
        return bits.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> X(sbyte* x, int chunk) => Vector256.Create(*(int*)(x + 4 * chunk)).AsSByte();
}
