using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The integer kernel for CPUs without AVX2 — ARM64 above all — in 128-bit vectors: y[r] = Σ_k W[r, k]·x[k] for one
/// group of 8 rows of the same <see cref="PackedMatrix"/> layout the x86 kernels read. A 32-byte code vector of that
/// layout holds rows 0-3 in its first 16 bytes and rows 4-7 in its second, each lane 4 codes of one row, which is
/// what sdot multiplies; so each half of the group is its own pass (rows 0-3, then 4-7), with <typeparamref name="TD"/>
/// as the dot product (<see cref="SdotDot"/>, <see cref="Vector128Dot"/>). Per super-block the integer sums and the
/// two fused multiply-adds are <see cref="ReferenceKernel"/>'s, so the outputs are its bits.
/// </summary>
/// <remarks>
/// Written from the layout, not ported instruction by instruction from <see cref="PackedKernel{TK, TD}"/>: that one's
/// tiles, prefetch distances and register budgets were measured on x86; this one is the plain single-token loop (one
/// token at a time for prefill too), correct everywhere and a start for measurements on ARM hardware.
/// </remarks>
internal static unsafe class PortableKernel<TK, TD> where TK : struct, IKindTraits where TD : struct, IDot128
{
    /// <summary>
    /// 128 when some code or table entry of the kind exceeds a signed byte (Q8_0's q + 128, 8-bit int codes, IQ4_NL's,
    /// IQ4_XS's and the wide books' tables): every code then enters the dot product as code − 128 and 128·Σx joins the
    /// offset term, which <see cref="Finish"/> applies per block or <see cref="AddScaled"/> per 32 values with their
    /// sub-scale (IQ4_XS). The grid i-quants' bytes (<see cref="IKindTraits.MaxCode"/> 127) need none.
    /// </summary>
    private static int Bias => TK.Bits == 8 && TK.MaxCode is 0 or > 127 || TK.HasLut && (TK.WideLut || TK.MaxTableEntry > 127) ? 128 : 0;

    /// <summary>The offset per Σx: the kind's, plus the bias taken off the low table's codes and off the high table's
    /// (whose sums count 128 times).</summary>
    private static int Offset => TK.Offset + Bias * (TK.WideLut ? 129 : 1);

    /// <summary>This kernel's one tile strategy, for the matrix's <see cref="KernelChoice"/> (see PackedKernel.Tiles).</summary>
    internal static (string Tile, string Reason) Tiles => ("8-row interleaved (two 4-row halves)", "the x86 kernels' layout read in 128-bit halves");

    public static void Group(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, int* xLaneSums, float* y, int rows, int tokens, int yStride)
    {
        if (rows > PackedMatrix.GroupRows)
        {
            // Two adjacent groups: the second's first super-block is the next block where groups are paired.
            long second = GroupLayout<TK>.PairedGroups ? GroupLayout<TK>.BlockBytes : (long)superBlocks * GroupLayout<TK>.BlockBytes;
            Group(w, superBlocks, x, xScales, xSums16, xLaneSums, y, PackedMatrix.GroupRows, tokens, yStride);
            Group(w + second, superBlocks, x, xScales, xSums16, xLaneSums, y + PackedMatrix.GroupRows, rows - PackedMatrix.GroupRows, tokens, yStride);
            return;
        }
        // Token u's activations are u rows of codes, scales and sums on; its outputs yStride floats on.
        int xStride = superBlocks * TK.SuperBlock;
        for (int u = 0; u < tokens; u++)
        {
            sbyte* xu = x + (long)u * xStride;
            float* su = xScales + u * superBlocks;
            short* cu = xSums16 + u * (xStride / 16);
            FourRows(w, superBlocks, xu, su, cu, y + u * yStride, Math.Min(rows, 4), 0);
            if (rows > 4) FourRows(w, superBlocks, xu, su, cu, y + u * yStride + 4, rows - 4, 1);
        }
    }

    /// <summary>Rows 4·half to 4·half + 3 of the group (the first or second 16 bytes of each code vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FourRows(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows, int half)
    {
        // Statics before any vector is live (see PackedKernel.Tile: a class initialisation check in the loop made the
        // JIT keep accumulators in memory).
        byte* tables = (byte*)TK.Tables;
        int offset = Offset;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockStride = GroupLayout<TK>.BlockStride;
        Vector128<byte> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
        if (TK.HasLut) LoadTable(tables, out t0, out t1, out t2, out t3);
        if (TK.WideLut) LoadTable(tables + TableLookup.HighOffset, out u0, out u1, out u2, out u3);
        var acc = Vector128<float>.Zero;
        w += 16 * half;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += sb, xSums16 += sb / 16)
        {
            // p, sub: this half's scales and sub-scales are found from the block's, at 4·half rows on.
            byte* p = w - 16 * half + codeBytes;
            byte* sub = p + PackedKind.ScaleBytesOf(TK.HalfScale) * (TK.HasMins ? 2 : 1);
            Vector128<int> isum = default, imin = default;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                // h0: the 4 rows' sums over chunks 0-3 of these 32 columns, h1 over chunks 4-7; g0, g1 the high table's.
                Vector128<int> h0 = default, h1 = default, g0 = default, g1 = default;
                if (TK.Bits == 8)
                {
                    for (int c = 0; c < 4; c++)
                    {
                        h0 = Dot(h0, Vector128.Load(wj + 32 * c), xj, c);
                        h1 = Dot(h1, Vector128.Load(wj + 32 * (c + 4)), xj, c + 4);
                    }
                }
                else if (TK.Bits >= 4)
                {
                    for (int k = 0; k < 4; k++)
                    {
                        Codes4(wj, k, out var c0, out var c1);
                        h0 = Dot(h0, Low(c0, t0, t1, t2, t3), xj, k);
                        h1 = Dot(h1, Low(c1, t0, t1, t2, t3), xj, k + 4);
                        if (TK.WideLut)
                        {
                            g0 = Dot(g0, Lookup(c0, u0, u1, u2, u3), xj, k);
                            g1 = Dot(g1, Lookup(c1, u0, u1, u2, u3), xj, k + 4);
                        }
                    }
                }
                else
                {
                    for (int k = 0; k < 2; k++)
                    {
                        Codes2(wj, k, out var c0, out var c2, out var c4, out var c6);
                        h0 = Dot(Dot(h0, c0, xj, k), c2, xj, k + 2);
                        h1 = Dot(Dot(h1, c4, xj, k + 4), c6, xj, k + 6);
                    }
                }
                if (TK.WideLut) { h0 += Vector128.ShiftLeft(g0, 7); h1 += Vector128.ShiftLeft(g1, 7); }
                isum = AddScaled(isum, h0, h1, sub, j, half, xSums16, offset);
                if (TK.HasMins) imin = AddMins(imin, sub, j, half, xSums16);
            }
            acc = Finish(acc, isum, imin, p, half, xSums16, xScales[s], offset);
        }
        if (rows == 4) acc.Store(y);
        else for (int r = 0; r < rows; r++) y[r] = acc[r];
    }

    /// <summary>acc + the 4 rows' dot products of these codes (biased where <see cref="Bias"/> says) with the token's
    /// activations of chunk c (4 columns, broadcast to every lane).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Dot(Vector128<int> acc, Vector128<byte> codes, sbyte* xj, int c)
    {
        var signed = Bias == 0 ? codes.AsSByte() : (codes ^ Vector128.Create((byte)0x80)).AsSByte();
        return TD.Accumulate(acc, signed, Vector128.Create(*(int*)(xj + 4 * c)).AsSByte());
    }

    /// <summary>
    /// Chunks k and k+4 of a 4-bit plane (low and high nibbles of vector k), with the fifth bit (bit c of the plane
    /// after the codes, for chunk c) or the fifth and sixth (chunk k's at bits 2·(k/2) of plane k%2, chunk k+4's at
    /// 2·(k/2)+4) of 5- and 6-bit kinds.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Codes4(byte* wj, int k, out Vector128<byte> c0, out Vector128<byte> c1)
    {
        var v = Vector128.Load(wj + 32 * k);
        c0 = v & Vector128.Create((byte)0x0F);
        c1 = Vector128.ShiftRightLogical(v, 4);
        if (TK.Bits == 5)
        {
            var plane = Vector128.Load(wj + 128);
            c0 |= ByteFields.Extract(plane, k, 1, 4);
            c1 |= ByteFields.Extract(plane, k + 4, 1, 4);
        }
        else if (TK.Bits == 6)
        {
            var plane = Vector128.Load(wj + 128 + 32 * (k % 2));
            c0 |= ByteFields.Extract(plane, 2 * (k / 2), 2, 4);
            c1 |= ByteFields.Extract(plane, 2 * (k / 2) + 4, 2, 4);
        }
    }

    /// <summary>Chunks k, k+2, k+4 and k+6 of a 2-bit plane (shifts 0, 2, 4, 6 of vector k), with 3-bit kinds' third
    /// bits from the bit plane after it (bit c is chunk c's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Codes2(byte* wj, int k, out Vector128<byte> c0, out Vector128<byte> c2, out Vector128<byte> c4, out Vector128<byte> c6)
    {
        var v = Vector128.Load(wj + 32 * k);
        c0 = ByteFields.Extract(v, 0, 2, 0);
        c2 = ByteFields.Extract(v, 2, 2, 0);
        c4 = ByteFields.Extract(v, 4, 2, 0);
        c6 = Vector128.ShiftRightLogical(v, 6);
        if (TK.Bits == 3)
        {
            var third = Vector128.Load(wj + 64);
            c0 |= ByteFields.Extract(third, k, 1, 2);
            c2 |= ByteFields.Extract(third, k + 2, 1, 2);
            c4 |= ByteFields.Extract(third, k + 4, 1, 2);
            c6 |= ByteFields.Extract(third, k + 6, 1, 2);
        }
    }

    /// <summary>A table's 16-byte quarters (entries 16q to 16q + 15; one for 4-bit indices) from
    /// <see cref="TableLookup"/>'s layout, where quarter q's first copy starts at byte 32·q.</summary>
    private static void LoadTable(byte* t, out Vector128<byte> t0, out Vector128<byte> t1, out Vector128<byte> t2, out Vector128<byte> t3)
    {
        t0 = Vector128.Load(t);
        t1 = TK.Bits == 6 ? Vector128.Load(t + 32) : default;
        t2 = TK.Bits == 6 ? Vector128.Load(t + 64) : default;
        t3 = TK.Bits == 6 ? Vector128.Load(t + 96) : default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Low(Vector128<byte> code, Vector128<byte> t0, Vector128<byte> t1, Vector128<byte> t2, Vector128<byte> t3) =>
        TK.HasLut ? Lookup(code, t0, t1, t2, t3) : code;

    /// <summary>
    /// Table entries of 4- or 6-bit indices. A variable shuffle gives 0 for an index past its 16 bytes (ARM64's tbl,
    /// x86's pshufb with the runtime's fix-up), so a 64-entry table is the OR of four quarter lookups, each index less
    /// 16·q (wrapping below zero to out of range); ARM64 looks the four up in one tbl.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Lookup(Vector128<byte> index, Vector128<byte> t0, Vector128<byte> t1, Vector128<byte> t2, Vector128<byte> t3)
    {
        if (TK.Bits == 4) return Vector128.Shuffle(t0, index);
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.VectorTableLookup((t0, t1, t2, t3), index);
        return Vector128.Shuffle(t0, index)
            | Vector128.Shuffle(t1, index - Vector128.Create((byte)16))
            | Vector128.Shuffle(t2, index - Vector128.Create((byte)32))
            | Vector128.Shuffle(t3, index - Vector128.Create((byte)48));
    }

    /// <summary>isum plus the 32 columns' sums with the format's sub-scales (and Q6_K/Q3_K's offset) applied:
    /// <see cref="ReferenceKernel"/>'s Σ sc·(dot + offset·Σx) per 16 or 32 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> AddScaled(Vector128<int> isum, Vector128<int> h0, Vector128<int> h1, byte* sub, int j, int half, short* xSums16, int offset)
    {
        if (TK.Layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint) return isum + h0 + h1;
        // ScaleMin32: one byte per row and 32 columns.
        if (TK.Layout == SubScaleLayout.ScaleMin32) return isum + Bytes4(sub + 8 * j + 4 * half) * (h0 + h1);
        // The 16-value layouts: each row's two sub-blocks of these 32 columns side by side (bytes 2r and 2r + 1).
        if (TK.Layout == SubScaleLayout.PackedScaleMin16)
        {
            var v = BytePairs(sub + 16 * j + 8 * half);
            return isum + (v & Vector128.Create(15)) * h0 + (Vector128.ShiftRightLogical(v, 16) & Vector128.Create(15)) * h1;
        }
        // Signed32 (IQ4_XS): a signed byte per row and 32 columns, the offset per 32 columns inside the scaled sum.
        if (TK.Layout == SubScaleLayout.Signed32)
        {
            var sc = Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalar(*(int*)(sub + 8 * j + 4 * half)).AsSByte())).AsInt32();
            var h = h0 + h1;
            if (offset != 0) h += Vector128.Create(offset * (xSums16[2 * j] + xSums16[2 * j + 1]));
            return isum + sc * h;
        }
        // Signed16 (Q6_K, Q3_K): signed sub-scales, the offset per 16 columns inside the scaled sum.
        var signed = SignedBytePairs((sbyte*)sub + 16 * j + 8 * half);
        var sc0 = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(signed, 16), 16);
        var sc1 = Vector128.ShiftRightArithmetic(signed, 16);
        if (offset != 0)
        {
            h0 += Vector128.Create(offset * xSums16[2 * j]);
            h1 += Vector128.Create(offset * xSums16[2 * j + 1]);
        }
        return isum + sc0 * h0 + sc1 * h1;
    }

    /// <summary>imin plus the mins times Σx: Q4_K/Q5_K's for columns 32·j to 32·j + 63 at even j (the row's two mins
    /// side by side), Q2_K's high nibbles per 16 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> AddMins(Vector128<int> imin, byte* sub, int j, int half, short* xSums16)
    {
        short* s = xSums16 + 2 * j;
        if (TK.Layout == SubScaleLayout.ScaleMin32)
        {
            if ((j & 1) != 0) return imin;
            var m = BytePairs(sub + 64 + 8 * j + 8 * half);
            return imin + (m & Vector128.Create(0xFF)) * Vector128.Create(s[0] + s[1]) + Vector128.ShiftRightLogical(m, 16) * Vector128.Create(s[2] + s[3]);
        }
        if (TK.Layout == SubScaleLayout.PackedScaleMin16)
        {
            var v = BytePairs(sub + 16 * j + 8 * half);
            return imin + (Vector128.ShiftRightLogical(v, 4) & Vector128.Create(15)) * Vector128.Create((int)s[0])
                + Vector128.ShiftRightLogical(v, 20) * Vector128.Create((int)s[1]);
        }
        return imin; // Q4_1/Q5_1: the min counts once per value, applied with the block's Σx in Finish
    }

    /// <summary>The whole-block corrections, then isum·(d·dx) and −imin·(dmin·dx), each one fused multiply-add in the
    /// reference's order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Finish(Vector128<float> acc, Vector128<int> isum, Vector128<int> imin, byte* p, int half, short* xSums16, float xScale, int offset)
    {
        if ((TK.Layout == SubScaleLayout.None && (offset != 0 || TK.HasMins)) || TK.Layout == SubScaleLayout.ZeroPoint)
        {
            int total = 0;
            for (int i = 0; i < TK.SuperBlock / 16; i++) total += xSums16[i];
            if (TK.Layout == SubScaleLayout.ZeroPoint)
            {
                isum -= Bytes4(p + PackedKind.ScaleBytesOf(TK.HalfScale) + 4 * half) * Vector128.Create(total);
                if (offset != 0) isum += Vector128.Create(offset * total); // the 8-bit codes' bias
            }
            else if (TK.HasMins) imin = Vector128.Create(total);
            else isum += Vector128.Create(offset * total);
        }
        var dx = Vector128.Create(xScale);
        acc = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(isum), Scale(p, half) * dx, acc);
        if (TK.HasMins)
        {
            var dmin = TK.HalfScale ? HalfWidening.Widen4Finite(p + 16 + 8 * half) : Vector128.Load((float*)p + 8 + 4 * half);
            acc = Vector128.FusedMultiplyAdd(-Vector128.ConvertToSingle(imin), dmin * dx, acc);
        }
        return acc;
    }

    /// <summary>The 4 rows' d: E8M0 (a normal float's exponent field, or as stored: <see cref="IKindTraits.RawExponents"/>),
    /// f16 or f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Scale(byte* p, int half)
    {
        if (TK.E8M0)
        {
            if (!TK.RawExponents) return Vector128.ShiftLeft(Bytes4(p + 4 * half), 23).AsSingle();
            // The rare matrix with an exponent that field cannot hold: 2^(e − 127 − shift) as the block decoder
            // computes it (subnormal or zero far down, NaN for 255).
            byte* e = p + 4 * half;
            return Vector128.Create(RawScale(e[0]), RawScale(e[1]), RawScale(e[2]), RawScale(e[3]));
        }
        return TK.HalfScale ? HalfWidening.Widen4Finite(p + 8 * half) : Vector128.Load((float*)p + 4 * half);
    }

    private static float RawScale(byte e) => e == 255 ? float.NaN : MathF.ScaleB(1f, e - 127 - TK.E8M0Shift);

    /// <summary>4 bytes, one per row, zero-extended to the lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Bytes4(byte* p) =>
        Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalar(*(uint*)p).AsByte())).AsInt32();

    /// <summary>8 bytes, two per row: lane r holds byte 2r in its low 16 bits and byte 2r + 1 in its high 16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> BytePairs(byte* p) => Vector128.WidenLower(Vector128.CreateScalar(*(ulong*)p).AsByte()).AsInt32();

    /// <summary><see cref="BytePairs"/> of signed bytes, each sign-extended to its 16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> SignedBytePairs(sbyte* p) => Vector128.WidenLower(Vector128.CreateScalar(*(long*)p).AsSByte()).AsInt32();
}
