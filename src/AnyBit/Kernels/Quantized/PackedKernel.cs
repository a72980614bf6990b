using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The SIMD kernel: y[r] = Σ_k W[r, k]·x[k] for one or two groups of 8 rows of a <see cref="PackedMatrix"/> and one
/// to four tokens of <see cref="QuantizedActivations"/>. Per super-block the integer sums of all 8 rows advance together
/// (lane r = row r), then each lane adds isum·(d·dx) and subtracts imin·(dmin·dx) each as one fused multiply-add —
/// the same float operations in the same order as <see cref="ReferenceKernel"/>, so both give identical bits.
/// </summary>
/// <remarks>
/// One class, generic over the kind's traits and the dot product, in files by family: <c>PackedKernel.Tiles.cs</c>
/// decides which tile runs (<see cref="Group"/> and every flag it reads, with their reasons); the tiles are in
/// Tile8 (8 rows, every kind), Legacy and Legacy512 (Q4_0, Q5_0, Q8_0, mxint8), KQuants, Decode16 (int, table and MX
/// kinds), Tables and Crumbs; this file holds what they share (unpacking, sub-scales, the epilogue, prefetches).
/// </remarks>
internal static unsafe partial class PackedKernel<TK, TD> where TK : struct, IKindTraits where TD : struct, IDotProduct
{
    /// <summary>
    /// Bytes ahead of the codes being read that each 32-column step asks the cache to fetch. Decode streams every
    /// weight from memory once; the hardware prefetcher alone left K-quant decode short of the bandwidth the simpler
    /// formats reach. 4 KiB and 8 KiB did alike, 16 KiB worse (see docs/performance.md#prefetch).
    /// </summary>
    private const int PrefetchDistance = 8192;

    /// <summary>
    /// The 8-row tile's prefetches bring lines into L1 for Q4_K/Q5_K and for the kinds whose decode runs this tile on
    /// AVX-512 machines too (the unpaired ones: TQ2_0/TQ1_0, int2, Q4_1, Q5_1), into L2 for every other kind: each
    /// kind's decode was measured both ways, and L1 won for exactly those (see docs/performance.md#prefetch).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p)
    {
        if (TK.Layout == SubScaleLayout.ScaleMin32 || !PairedGroups) Sse.Prefetch0(p);
        else Sse.Prefetch1(p);
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
        // A shift and a mask here, not ByteFields' one affine transform: for a nibble that measured slower (the
        // transform competes with the dot products for their ports; see docs/performance.md#measured-and-dropped).
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
    /// left there. Five instructions for two vectors of indices where the masks and GFNI transforms took seven
    /// (see docs/performance.md#table-formats).
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

    /// <summary>From one super-block of a group to its next: two blocks where groups are stored in pairs.</summary>
    private static int BlockStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.BlockStride; }

    private static int BlockBytes { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => GroupLayout<TK>.BlockBytes; }

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
        if (TK.Layout == SubScaleLayout.Signed32)
        {
            // offset·Σx of the 32 columns joins the sum before the scale (|Σ (code + offset)·x| < 2^23: exact).
            var h = h0 + h1;
            if (offset != 0) h += Vector256.Create(offset * (xSums16[2 * j] + xSums16[2 * j + 1]));
            return isum + Avx2.ConvertToVector256Int32((sbyte*)sub + 8 * j) * h;
        }
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
    /// two instructions where <see cref="E8M0Scale"/> takes nine (see docs/performance.md#table-formats).
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

    /// <summary>
    /// offset·(Σ16 + Σ16') of a 32-value block in every lane: one int16 multiply-add of the block's two Σ16 against
    /// the kind's offset. The 512-bit kernels use vpmaddubsw directly, not <typeparamref name="TD"/>, so no
    /// <see cref="IDotProduct.CodeBias"/> enters here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> OffsetTerm512(short* xSums16) =>
        Avx512BW.MultiplyAddAdjacent(Vector512.Create(*(int*)xSums16).AsInt16(), Vector512.Create((short)TK.Offset));
}
