using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// Which tile multiplies a kind: the one decision of PackedKernel. Every flag that picks a tile is here, each with the
// reason it exists, and Group dispatches on them. All are properties of the kind's traits (TK), the dot product (TD)
// and IsSupported checks, so the JIT folds them to constants and each kernel instance keeps only its own branch.
// The tiles themselves live by family: Tile8 (every kind), Legacy (Q4_0/Q5_0/Q8_0/mxint8, 16 rows), Legacy512 (their
// 512-bit prompt tiles), KQuants (Q2_K-Q6_K, 16 rows), Decode16 (int, table and MX kinds, 16 rows), Tables (small
// tables in 512-bit registers), Crumbs (2-bit codes in place, 8 rows); PackedKernel.cs holds what they share.
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One to eight tokens: with several, each code vector is unpacked (and looked up) once and meets all their
    /// activations — prompt processing's register tiles (two tokens for every kind; four or eight where a flag below
    /// says so; other counts split into those). Token t+1's activations follow token t's (strides of one row of codes,
    /// scales, sums and lane sums); its outputs go <paramref name="yStride"/> floats after token t's.
    /// </summary>
    public static void Group(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, int* xLaneSums, float* y, int rows, int tokens, int yStride)
    {
        if (tokens > 4 && !(tokens == 8 && EightTokenTile))
        {
            // Up to eight tokens per call for the tiles that take them; every other tile takes four, then the rest.
            int columns = superBlocks * TK.SuperBlock;
            Group(w, superBlocks, x, xScales, xSums16, xLaneSums, y, rows, 4, yStride);
            Group(w, superBlocks, x + 4 * columns, xScales + 4 * superBlocks, xSums16 + 4 * (columns / 16), xLaneSums + 4 * (columns / 32),
                y + 4 * yStride, rows, tokens - 4, yStride);
            return;
        }
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
                    else if (TK.Layout == SubScaleLayout.Signed16) Decode16Signed(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (TK.Bits == 8) Decode16<ByteStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (SmallTable512) Decode16SmallTable512(w, superBlocks, x, xScales, xSums16, y, rows);
                    else if (TK.Bits >= 4) Decode16<NibbleStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    else Decode16<CrumbStep>(w, superBlocks, x, xScales, xSums16, y, rows);
                    return;
                }
            }
            // The second group's first super-block: the next block where groups are paired, else a group's bytes on.
            long second = PairedGroups ? BlockBytes : (long)superBlocks * BlockBytes;
            Group(w, superBlocks, x, xScales, xSums16, xLaneSums, y, PackedMatrix.GroupRows, tokens, yStride);
            Group(w + second, superBlocks, x, xScales, xSums16, xLaneSums, y + PackedMatrix.GroupRows, rows - PackedMatrix.GroupRows, tokens, yStride);
            return;
        }
        if (tokens == 4 && FourTokenTile) { Tile4(w, superBlocks, x, xScales, xSums16, y, rows, yStride); return; }
        if (tokens >= 4 && SmallTableTokens)
        {
            if (tokens == 8) SmallTableTile<C8>(w, superBlocks, x, xScales, xLaneSums, y, rows, yStride);
            else SmallTableTile<C4>(w, superBlocks, x, xScales, xLaneSums, y, rows, yStride);
            return;
        }
        if (tokens >= 4 && SignedBytesTokens)
        {
            if (tokens == 8) SignedByteTile<C8>(w, superBlocks, x, xScales, y, rows, yStride);
            else SignedByteTile<C4>(w, superBlocks, x, xScales, y, rows, yStride);
            return;
        }
        if (tokens == 1 && CrumbsInPlace) { Decode8Crumbs(w, superBlocks, x, xScales, xSums16, y, rows); return; }
        // Any other count as pairs and a single: token u's activations are u rows of codes, scales and sums on.
        int xStride = superBlocks * TK.SuperBlock;
        for (int u = 0; u < tokens; u += 2)
        {
            sbyte* xu = x + (long)u * xStride;
            float* su = xScales + u * superBlocks;
            short* cu = xSums16 + u * (xStride / 16);
            if (Signed16Pairs)
            {
                if (tokens - u >= 2) TileSigned16<C2>(w, superBlocks, xu, su, cu, y + u * yStride, rows, yStride);
                else TileSigned16<C1>(w, superBlocks, xu, su, cu, y + u * yStride, rows, 0);
            }
            else if (tokens - u >= 2) Tile<C2>(w, superBlocks, xu, su, cu, y + u * yStride, rows, yStride);
            else Tile<C1>(w, superBlocks, xu, su, cu, y + u * yStride, rows, 0);
        }
    }

    /// <summary>
    /// The tile strategy <see cref="Group"/> runs for this kind and dot product, and why, for the matrix's
    /// <see cref="KernelChoice"/> (read once at load, <see cref="KernelPaths.Choose"/>): from the same flags, so what
    /// the reports print is what runs.
    /// </summary>
    internal static (string Tile, string Reason) Tiles =>
        ((SixteenRowTile ? "16-row tiles (paired 8-row groups)" : "8-row interleaved")
            + (Signed16Pairs ? ", sub-scales in the pair widening" : "")
            + (SmallTableTokens ? ", prefill 8 tokens per table lookup" : "")
            + (SignedBytesTokens ? ", prefill 8 tokens per code vector" : "")
            + (TD.CodeBias != 0 ? ", signed codes" + (FourTokenSixteenRowTile && WordTile ? " (prefill: int16 products)" : "") : ""),
         SixteenRowTile ? "paired groups, and AVX-512VL's 32 registers hold two groups' sums"
            : !Avx512F.VL.IsSupported ? "no AVX-512VL: 8-row groups, each its own run of memory (GroupLayout.Paired)"
            : "8-row groups: 2-bit codes, mins without sub-scales, or IQ4_XS's scales per 32 (GroupLayout.Paired)");

    /// <summary>The layout of <see cref="PackedKind.PairedGroups"/>, for the kinds with a 16-row tile.</summary>
    private static bool PairedGroups { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.PairedGroups; }

    /// <summary>
    /// Four tokens per 8-row tile (<see cref="Tile4"/>): 4- to 8-bit codes without tables or mins, on CPUs with
    /// AVX-512's 32 vector registers (eight row sums, four super-block sums and four float accumulators live at
    /// once; AVX2's 16 would spill them). Kinds with mins (four more sums live) and 2-bit codes (whose unpacking the
    /// pair tile already shares between two tokens) measured no faster and keep pairs, as do table kinds, which hold
    /// their tables in registers (see docs/performance.md#register-tiles).
    /// </summary>
    private static bool FourTokenTile => !TK.HasLut && !TK.HasMins && TK.Bits >= 4 && Avx512F.VL.IsSupported;

    /// <summary>
    /// Prompt processing's tile of byte codes on AVX2's sign-trick product (<see cref="Avx2SignedDot"/>: Q8_0, mxint8),
    /// eight tokens × 8 rows (four for a chunk's last four to seven; <see cref="SignedByteTile{TN}"/>). The product's
    /// pairs reach 2·128·127, so nothing sums in int16 and each product vector is widened on its own, but
    /// <see cref="Tile{TN}"/> also makes each code vector signed and takes its magnitudes once per token: here once
    /// per chunk for eight tokens, five instructions per token and chunk instead of seven. gpt-oss's attention
    /// matrices are Q8_0 (see docs/performance.md#prefill).
    /// </summary>
    private static bool SignedBytesTokens =>
        TK.Bits == 8 && !TK.HasLut && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasMins
        && TD.CodeBias == 128 && TK.Offset + TD.CodeBias == 0 && !TD.SumsPairs && !SixteenRowTile;

    /// <summary>
    /// The tiles that take eight tokens per call (<see cref="QuantizedMatMul.MaxTokensPerCall"/>). Both are for CPUs
    /// without AVX-512VL (measured on Zen 3): AVX-512 CPUs without VNNI, which run the AVX2 products too, keep their
    /// 16-row tiles (<see cref="WordTile"/>, four tokens at a time), not measured against these.
    /// </summary>
    private static bool EightTokenTile => SmallTableTokens || SignedBytesTokens;

    /// <summary>
    /// Prompt processing's tile of E2M1 tables (MXFP4, mxfp4_e2m1, e2m1 groups) on AVX2 without VNNI: eight tokens × 8
    /// rows (four for a chunk's last four to seven; <see cref="SmallTableTile{TN}"/>). <see cref="Tile{TN}"/> looks
    /// each code vector up for two tokens and widens every product vector on its own: here each lookup serves eight
    /// tokens, and the entries are small enough (|entry + offset| ≤ 16) that a token's eight product vectors and its
    /// offset term sum exactly in int16 lanes, widened by one vpmaddwd — ten multiplies per token and block instead of
    /// sixteen, on the two pipes AMD's Zen 3 runs both the integer multiplies and the float ones on. gpt-oss's experts
    /// are MXFP4: their products are most of its prefill (see docs/performance.md#prefill).
    /// </summary>
    private static bool SmallTableTokens =>
        TK.HasLut && !TK.WideLut && TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasMins
        && TK.MaxTableEntry <= 32 && Math.Max(TK.MaxTableEntry + TK.Offset, -TK.Offset) <= 16 && TD.SumsPairs && TD.CodeBias == 0
        && !SixteenRowTile;

    /// <summary>
    /// The 8-row decode of 2-bit codes without sub-scales (int2 groups, TQ2_0/TQ1_0 where they stay interleaved)
    /// where the dot product is exact for bytes up to 192 (VNNI): each crumb is multiplied where it sits, as 4^p·code,
    /// into one sum per position p, and the four sums are shifted down once per super-block. <see cref="Tile{TN}"/>
    /// spends a mask and three GFNI transforms per code vector (the transforms on the dot products' ports, their
    /// constants reloaded every step) and keeps one dependency chain per pair of positions; here it is four masks
    /// held in registers and four chains: faster for int2 and TQ2_0, in cache and from memory, which brings TQ2_0 level
    /// with its bit-serial layout (that one keeps the ternary kinds on AMD for its prefill: see
    /// BitSerialMatrix.Preferred; docs/performance.md#register-tiles).
    /// </summary>
    private static bool CrumbsInPlace =>
        TK.Bits == 2 && TK.Layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint && !TK.HasLut && !TK.HasMins && !PairedGroups
        && TD.MaxCode >= 0xC0 && TD.CodeBias == 0 && !TD.SumsPairs;

    /// <summary>
    /// Sixteen rows (two groups) at once for every kind stored in pairs (<see cref="PairedGroups"/>), on CPUs with
    /// AVX-512's 32 vector registers, which hold both groups' sums. Each activation broadcast then feeds two groups'
    /// dot products and each token's offset term and scale are read once for both, where the one-group tile spent as
    /// many instructions on those (and on its 32-value epilogue) as on the dot products themselves
    /// (see docs/performance.md#paired-groups).
    /// </summary>
    private static bool SixteenRowTile => PairedGroups && Avx512F.VL.IsSupported;

    /// <summary>The 16-row tiles of <see cref="TileX2{TN, TS}"/>, one and four tokens: whole-block offset only, 4-, 5- or
    /// 8-bit codes without tables (Q4_0, Q5_0, Q8_0, mxint8). The other paired kinds decode with <see cref="Decode16{TS}"/>.</summary>
    private static bool FourTokenSixteenRowTile => SixteenRowTile && TK.Layout == SubScaleLayout.None && !TK.HasLut && TK.Bits is 4 or 5 or 8;

    /// <summary>
    /// Prompt processing's 16-row × 4-token tile for Q4_0 in 512-bit registers: .NET 10 has no 512-bit vpdpbusd, so
    /// <see cref="TileX2{TN, TS}"/> multiplies 32 bytes per instruction; here one vpmaddubsw takes both groups'
    /// 64 code bytes (group 2i's rows in the low half, 2i+1's in the high) and their int16 pair sums are added over
    /// the block's 8 chunks (at most 8·2·15·127 = 30480) before one vpmaddwd widens them — a register of 16 rows
    /// throughout, so unpacking, the offset term and the float epilogue run once for both groups. Faster than
    /// TileX2's VNNI tile on AMD Zen 5; taken on AMD CPUs with AVX-512, while Intel's (VNNI tile tuned there, this one
    /// not measured) keep TileX2 (see docs/performance.md#prefill).
    /// </summary>
    private static bool PairsTile512 =>
        TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasLut && !TK.HasMins && !TK.E8M0
        && TK.HalfScale && Avx512BW.IsSupported && !CpuVendor.IsIntel;

    /// <summary>
    /// Prompt processing's tile for 8-bit codes up to 255 (Q8_0's q + 128, mxint8) on AVX-512 CPUs without VNNI:
    /// <see cref="TileX2{TN, TS}"/>'s sign trick (<see cref="Avx2SignedDot"/>) needs vpsignb, which has no EVEX form, so
    /// the JIT moved every operand into the first 16 registers and spilled (a third of the tile's instructions were
    /// moves). Here codes and activations are widened to int16 once (the code vector for four tokens, the activations
    /// once per block) and each product is one 512-bit vpmaddwd: no sign step, no int16 saturation to avoid.
    /// </summary>
    private static bool WordTile => TK.Bits == 8 && TD.CodeBias != 0 && Avx512BW.IsSupported; // within FourTokenSixteenRowTile (AVX-512VL)

    /// <summary>
    /// 4-bit codes without tables, on a dot product that is two multiplies (<see cref="IDotProduct.SumsPairs"/>: AVX2
    /// without VNNI): a 32-column step's 8 code vectors per row group and token are summed as int16 pairs (at most
    /// 8·2·15·127 = 30480) and widened once, the same integers with one vpmaddwd per step instead of eight.
    /// </summary>
    private static bool PairSums { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TD.SumsPairs && TK.Bits == 4 && !TK.HasLut; }

    /// <summary>
    /// Q4_0's decode where the dot product is exact for bytes up to 240 (VNNI): the high nibbles are multiplied where
    /// they sit, as 16·code, and their sum shifted down by 4 once per block. One token's decode is bound by
    /// instructions, not by the dot products (about 128 instructions per 32-column block, 16 of them vpdpbusd), and
    /// this takes the shift out of every code vector's unpacking — a mask each for the two halves, no vpsrlw — and
    /// gives each group two dependency chains instead of one: faster than <see cref="TileX2{TN, TS}"/>'s one-token
    /// step in cache and from memory. It keeps the software prefetch, without which it lost from memory
    /// (see docs/performance.md#register-tiles).
    /// </summary>
    private static bool HighNibblesInPlace =>
        TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasLut && !TK.HasMins
        && TD.MaxCode >= 0xF0 && TD.CodeBias == 0 && !TD.SumsPairs;

    /// <summary>Q2_K and Q3_K: 2- and 3-bit codes with 16-value sub-scales, decoded 16 rows at once (Decode16KCrumbs).</summary>
    private static bool K16Crumbs => TK.Bits <= 3 && TK.Layout is SubScaleLayout.PackedScaleMin16 or SubScaleLayout.Signed16;

    /// <summary>
    /// Signed sub-scales per 16 or 32 values with 4-bit table indices (IQ4_XS), 6-bit codes (Q6_K) or bytes (the grid
    /// i-quants' <see cref="SignedByteCodes"/>), where the dot product is AVX2's int16 pair products
    /// (<see cref="IDotProduct.ProductPairs"/>): <see cref="TileSigned16{TN}"/> widens each product vector against its
    /// rows' sub-scales where <see cref="Tile{TN}"/> widens it against ones and scales the 16-value sums after, in
    /// 32-bit multiplies (see docs/performance.md#register-tiles).
    /// </summary>
    private static bool Signed16Pairs => TK.Layout is SubScaleLayout.Signed16 or SubScaleLayout.Signed32 && TK.Bits is 4 or 6 or 8 && !TK.WideLut && TD.ProductPairs;

    /// <summary>
    /// A table kind on the sign-trick product (<see cref="Avx2SignedDot"/>: IQ4_XS on AVX2): the tile flips the
    /// table's biased entries back to the signed values once per call, so each looked-up vector goes straight into
    /// vpabsb/vpsignb, one instruction fewer per code vector than the product's own bias flip.
    /// </summary>
    private static bool SignedTable { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TK.HasLut && !TK.WideLut && TD.CodeBias == 128; }

    /// <summary>
    /// The 16-row decode of E2M1 blocks (MXFP4, mxfp4_e2m1, e2m1 groups) in 512-bit registers, on AMD CPUs with
    /// AVX-512 (as <see cref="TileX2Pairs512"/>): both groups' 64 index bytes per register, one lookup (vpshufb, the
    /// 16 entries in every 128-bit lane) and one vpmaddubsw per 64 codes instead of two of each, and the epilogue on
    /// 16 rows at once. The entries are at most 24, so four chunks' int16 pair sums (at most 4·2·24·127 = 24384) are
    /// exact before each of the two vpmaddwd that widen a block; eight would not be. Faster in cache, and a little
    /// from memory, where the memory is the limit (see docs/performance.md#table-formats).
    /// </summary>
    private static bool SmallTable512 =>
        TK.HasLut && !TK.WideLut && TK.Bits == 4 && TK.SuperBlock == 32 && TK.Layout == SubScaleLayout.None && !TK.HasMins
        && TK.MaxTableEntry <= 32 && Avx512BW.IsSupported && !CpuVendor.IsIntel;
}
