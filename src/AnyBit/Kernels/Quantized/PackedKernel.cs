using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The SIMD kernel: y[r] = Σ_k W[r, k]·x[k] for one group of 8 rows of a <see cref="PackedMatrix"/> and one token of
/// <see cref="QuantizedActivations"/>. Per super-block the integer sums of all 8 rows advance together
/// (lane r = row r), then each lane adds isum·(d·dx) and subtracts imin·(dmin·dx) as separate multiply and add —
/// the same float operations in the same order as <see cref="ReferenceKernel"/>, so both give identical bits.
/// </summary>
internal static unsafe class PackedKernel<TK, TD> where TK : struct, IKindTraits where TD : struct, IDotProduct
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Group(byte* w, int superBlocks, sbyte* x, float* xScales, int* xSums16, float* y, int rows)
    {
        // Statics first, before any vector is live: a class-initialisation call after that point makes the register
        // allocator keep the accumulators in memory for the whole method (measured: table kinds ran at half speed).
        byte* tables = (byte*)TK.Tables;
        int offset = TK.Offset;
        int sb = TK.SuperBlock, codeBytes = 32 * TK.Bits * (sb / 32);
        int blockBytes = codeBytes + PackedKind.ParamBytesOf(TK.HasMins, TK.Layout, TK.E8M0);
        int e8m0Shift = TK.E8M0Shift;
        var acc = Vector256<float>.Zero;
        var low4 = Vector256.Create((byte)0x0F);
        var low2 = Vector256.Create((byte)0x03);
        Vector256<byte> t0 = default, t1 = default, t2 = default, t3 = default, u0 = default, u1 = default, u2 = default, u3 = default;
        if (TK.HasLut) TableLookup.Load(tables, TK.Bits, TD.Vbmi, out t0, out t1, out t2, out t3);
        if (TK.WideLut) TableLookup.Load(tables + TableLookup.HighOffset, TK.Bits, TD.Vbmi, out u0, out u1, out u2, out u3);
        for (int s = 0; s < superBlocks; s++, w += blockBytes, x += sb, xSums16 += sb / 16)
        {
            byte* p = w + codeBytes;
            byte* sub = p + 32 * (TK.HasMins ? 2 : 1);
            var isum = Vector256<int>.Zero;
            var imin = Vector256<int>.Zero;
            for (int j = 0; j < sb / 32; j++)
            {
                byte* wj = w + j * 32 * TK.Bits;
                sbyte* xj = x + 32 * j;
                Vector256<int> h0 = Vector256<int>.Zero, h1 = Vector256<int>.Zero;
                Vector256<int> g0 = Vector256<int>.Zero, g1 = Vector256<int>.Zero; // wide tables' high parts
                if (TK.Bits == 8)
                {
                    h0 = TD.Accumulate(h0, Vector256.Load(wj), X(xj, 0));
                    h0 = TD.Accumulate(h0, Vector256.Load(wj + 32), X(xj, 1));
                    h0 = TD.Accumulate(h0, Vector256.Load(wj + 64), X(xj, 2));
                    h0 = TD.Accumulate(h0, Vector256.Load(wj + 96), X(xj, 3));
                    h1 = TD.Accumulate(h1, Vector256.Load(wj + 128), X(xj, 4));
                    h1 = TD.Accumulate(h1, Vector256.Load(wj + 160), X(xj, 5));
                    h1 = TD.Accumulate(h1, Vector256.Load(wj + 192), X(xj, 6));
                    h1 = TD.Accumulate(h1, Vector256.Load(wj + 224), X(xj, 7));
                }
                else if (TK.Bits == 4)
                {
                    for (int k = 0; k < 4; k++)
                    {
                        var v = Vector256.Load(wj + 32 * k);
                        var c0 = v & low4;
                        var c1 = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4;
                        var x0 = X(xj, k);
                        var x1 = X(xj, k + 4);
                        h0 = TD.Accumulate(h0, Low(c0, t0, t1, t2, t3), x0);
                        h1 = TD.Accumulate(h1, Low(c1, t0, t1, t2, t3), x1);
                        if (TK.WideLut)
                        {
                            g0 = TD.Accumulate(g0, Low(c0, u0, u1, u2, u3), x0);
                            g1 = TD.Accumulate(g1, Low(c1, u0, u1, u2, u3), x1);
                        }
                    }
                }
                else if (TK.Bits == 6)
                {
                    // Low nibbles as in the 4-bit layout, high two bits from the 2-bit plane after them.
                    var p0 = Vector256.Load(wj + 128).AsUInt16();
                    var p1 = Vector256.Load(wj + 160).AsUInt16();
                    var high3 = Vector256.Create((byte)0x30);
                    for (int k = 0; k < 4; k++)
                    {
                        var v = Vector256.Load(wj + 32 * k);
                        var plane = k % 2 == 0 ? p0 : p1;
                        // chunk k's high bits sit at shift 2·(k/2) of plane k%2, chunk k+4's at 2·(k/2)+4.
                        var hk = (k < 2 ? Vector256.ShiftLeft(plane, 4) : Vector256.ShiftLeft(plane, 2)).AsByte() & high3;
                        var hk4 = (k < 2 ? plane : Vector256.ShiftRightLogical(plane, 2)).AsByte() & high3;
                        var c0 = (v & low4) | hk;
                        var c1 = (Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4) | hk4;
                        var x0 = X(xj, k);
                        var x1 = X(xj, k + 4);
                        h0 = TD.Accumulate(h0, Low(c0, t0, t1, t2, t3), x0);
                        h1 = TD.Accumulate(h1, Low(c1, t0, t1, t2, t3), x1);
                        if (TK.WideLut)
                        {
                            g0 = TD.Accumulate(g0, Low(c0, u0, u1, u2, u3), x0);
                            g1 = TD.Accumulate(g1, Low(c1, u0, u1, u2, u3), x1);
                        }
                    }
                }
                else if (TK.Bits == 5)
                {
                    // Low nibbles as in the 4-bit layout; bit c of the fifth plane is chunk c's fifth bit.
                    var fifth = Vector256.Load(wj + 128).AsUInt16();
                    var sixteen = Vector256.Create((byte)16);
                    for (int k = 0; k < 4; k++)
                    {
                        var v = Vector256.Load(wj + 32 * k);
                        h0 = TD.Accumulate(h0, (v & low4) | (Fifth(fifth, k) & sixteen), X(xj, k));
                        h1 = TD.Accumulate(h1, (Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4) | (Fifth(fifth, k + 4) & sixteen), X(xj, k + 4));
                    }
                }
                else if (TK.Bits == 3)
                {
                    // Low two bits as in the 2-bit layout; bit c of the third plane is chunk c's third bit.
                    var third = Vector256.Load(wj + 64).AsUInt16();
                    var four = Vector256.Create((byte)4);
                    for (int k = 0; k < 2; k++)
                    {
                        var v = Vector256.Load(wj + 32 * k);
                        var v16 = v.AsUInt16();
                        h0 = TD.Accumulate(h0, (v & low2) | (Third(third, k) & four), X(xj, k));
                        h0 = TD.Accumulate(h0, (Vector256.ShiftRightLogical(v16, 2).AsByte() & low2) | (Third(third, k + 2) & four), X(xj, k + 2));
                        h1 = TD.Accumulate(h1, (Vector256.ShiftRightLogical(v16, 4).AsByte() & low2) | (Third(third, k + 4) & four), X(xj, k + 4));
                        h1 = TD.Accumulate(h1, (Vector256.ShiftRightLogical(v16, 6).AsByte() & low2) | (Third(third, k + 6) & four), X(xj, k + 6));
                    }
                }
                else
                {
                    for (int k = 0; k < 2; k++)
                    {
                        var v = Vector256.Load(wj + 32 * k);
                        var v16 = v.AsUInt16();
                        h0 = TD.Accumulate(h0, v & low2, X(xj, k));
                        h0 = TD.Accumulate(h0, Vector256.ShiftRightLogical(v16, 2).AsByte() & low2, X(xj, k + 2));
                        h1 = TD.Accumulate(h1, Vector256.ShiftRightLogical(v16, 4).AsByte() & low2, X(xj, k + 4));
                        h1 = TD.Accumulate(h1, Vector256.ShiftRightLogical(v16, 6).AsByte() & low2, X(xj, k + 6));
                    }
                }

                if (TK.WideLut)
                {
                    h0 += Vector256.ShiftLeft(g0, 7);
                    h1 += Vector256.ShiftLeft(g1, 7);
                }

                if (TK.Layout is SubScaleLayout.None or SubScaleLayout.ZeroPoint)
                {
                    isum += h0 + h1;
                }
                else if (TK.Layout == SubScaleLayout.ScaleMin32)
                {
                    var sc = Avx2.ConvertToVector256Int32(sub + 8 * j);
                    var m = Avx2.ConvertToVector256Int32(sub + 64 + 8 * j);
                    isum += sc * (h0 + h1);
                    imin += m * Vector256.Create(xSums16[2 * j] + xSums16[2 * j + 1]);
                }
                else if (TK.Layout == SubScaleLayout.PackedScaleMin16)
                {
                    var v0 = Avx2.ConvertToVector256Int32(sub + 16 * j);
                    var v1 = Avx2.ConvertToVector256Int32(sub + 16 * j + 8);
                    var fifteen = Vector256.Create(15);
                    isum += (v0 & fifteen) * h0 + (v1 & fifteen) * h1;
                    imin += Vector256.ShiftRightLogical(v0, 4) * Vector256.Create(xSums16[2 * j])
                          + Vector256.ShiftRightLogical(v1, 4) * Vector256.Create(xSums16[2 * j + 1]);
                }
                else
                {
                    var s0 = Avx2.ConvertToVector256Int32((sbyte*)sub + 16 * j);
                    var s1 = Avx2.ConvertToVector256Int32((sbyte*)sub + 16 * j + 8);
                    if (offset != 0)
                    {
                        h0 += Vector256.Create(offset * xSums16[2 * j]);
                        h1 += Vector256.Create(offset * xSums16[2 * j + 1]);
                    }
                    isum += s0 * h0 + s1 * h1;
                }
            }
            if ((TK.Layout == SubScaleLayout.None && (offset != 0 || TK.HasMins)) || TK.Layout == SubScaleLayout.ZeroPoint)
            {
                // Whole-block corrections need Σx over the super-block: the offset for the legacy and ternary
                // types, the per-row zero point for the int formats.
                int total = 0;
                for (int h = 0; h < sb / 16; h++) total += xSums16[h];
                if (TK.Layout == SubScaleLayout.ZeroPoint) isum -= Avx2.ConvertToVector256Int32(p + 32) * Vector256.Create(total);
                else if (TK.HasMins) imin = Vector256.Create(total); // Q4_1/Q5_1: a min of 1 per value
                else isum += Vector256.Create(offset * total);
            }
            var dx = Vector256.Create(xScales[s]);
            var d = TK.E8M0 ? E8M0Scale(p, e8m0Shift) : Vector256.Load((float*)p);
            acc += Vector256.ConvertToSingle(isum) * (d * dx);
            if (TK.HasMins) acc -= Vector256.ConvertToSingle(imin) * (Vector256.Load((float*)p + 8) * dx);
        }
        if (rows == 8) acc.Store(y);
        else for (int r = 0; r < rows; r++) y[r] = acc[r];
    }

    // Codes go into the dot product as they are, or for table kinds as the entries they index in the tables held in
    // t0..t3 (the high table's, in u0..u3, go into a second sum for wide books). Values in and out, no refs: a ref to
    // an accumulator would keep it in memory.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Low(Vector256<byte> code, Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3) =>
        TK.HasLut ? TableLookup.Lookup(code, TK.Bits, TD.Vbmi, t0, t1, t2, t3) : code;

    /// <summary>The plane's bit <paramref name="chunk"/> moved to bit 2 of each byte (still to be masked with 4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Third(Vector256<ushort> plane, int chunk) =>
        (chunk <= 2 ? Vector256.ShiftLeft(plane, 2 - chunk) : Vector256.ShiftRightLogical(plane, chunk - 2)).AsByte();

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

    /// <summary>The plane's bit <paramref name="chunk"/> moved to bit 4 of each byte (still to be masked with 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Fifth(Vector256<ushort> plane, int chunk) =>
        (chunk <= 4 ? Vector256.ShiftLeft(plane, 4 - chunk) : Vector256.ShiftRightLogical(plane, chunk - 4)).AsByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> X(sbyte* x, int chunk) => Vector256.Create(*(int*)(x + 4 * chunk)).AsSByte();
}
