using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats;

/// <summary>
/// ggml's K-quants: super-blocks of 256 weights split into sub-blocks with quantized scales, quantized exactly as
/// llama.cpp's <c>quantize_row_q{2..6}_K_ref</c> (no importance matrix) and dequantized as <c>dequantize_row_q*_K</c>.
/// Every float expression keeps ggml's evaluation order, because ggml-base is built without FMA or fast-math and the
/// fixtures hold its exact bytes.
/// Layouts (ggml-common.h): Q2_K { scales[16]; qs[64]; d; dmin }, Q3_K { hmask[32]; qs[64]; scales[12]; d },
/// Q4_K { d; dmin; scales[12]; qs[128] }, Q5_K { d; dmin; scales[12]; qh[32]; qs[128] },
/// Q6_K { ql[128]; qh[64]; scales[16] (int8); d }.
/// </summary>
public static class GgmlKQuants
{
    private const int QK_K = 256;
    private const float GroupMaxEps = 1e-15f;

    // ====================================================== helpers (ggml-quants.c's fitting routines)

    /// <summary>Symmetric fit with nmax levels each side; rmse_type 1 weights by x² and searches ±0.9 around the first scale.</summary>
    private static float MakeQxQuants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = SignedMaxMagnitude(x[..n], out float amax);
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; i++)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>Symmetric 3-bit fit with x²-weighted coordinate descent on the levels (make_q3_quants, do_rmse).</summary>
    private static float MakeQ3Quants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = SignedMaxMagnitude(x[..n], out float amax);
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0)
                {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int newL = NearestInt(x[i] * sl2 / slx);
                    newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[i] = (sbyte)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }

    /// <summary>Asymmetric (scale and min) fit over nstep+1 trial scales, keeping the lowest weighted error (make_qkx2_quants).</summary>
    private static float MakeQkx2Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> laux, float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            L[..n].Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError)
                {
                    laux[..n].CopyTo(L);
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>The 6-bit scale and min of sub-block j from Q4_K/Q5_K's 12 packed bytes (get_scale_min_k4).</summary>
    public static (int Scale, int Min) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    private static void PackScalesMinsK4(Span<byte> scales, int j, int ls, int lm)
    {
        if (j < 4)
        {
            scales[j] = (byte)ls;
            scales[j + 4] = (byte)lm;
        }
        else
        {
            scales[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (byte)((ls >> 4) << 6);
            scales[j] |= (byte)((lm >> 4) << 6);
        }
    }

    // ====================================================== Q2_K (84 bytes: scales[16], qs[64], d, dmin)

    public static void QuantizeQ2_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> L = stackalloc byte[QK_K];
        Span<byte> laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[QK_K / 16];
        Span<float> scales = stackalloc float[QK_K / 16];
        const float q4scale = 15f;
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * 84, 84);
            var sc = yb[..16];
            var qs = yb.Slice(16, 64);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < QK_K / 16; j++)
            {
                for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(xb[16 * j + l]);
                scales[j] = MakeQkx2Quants(16, 3, xb.Slice(16 * j, 16), weights, L.Slice(16 * j, 16), out mins[j], laux, -0.5f, 0.1f, 15, true);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            if (maxScale > 0)
            {
                float iscale = q4scale / maxScale;
                for (int j = 0; j < QK_K / 16; j++) sc[j] = (byte)NearestInt(iscale * scales[j]);
                WriteHalf(yb, 80, maxScale / q4scale);
            }
            else
            {
                sc.Clear();
                WriteHalf(yb, 80, 0f);
            }
            if (maxMin > 0)
            {
                float iscale = q4scale / maxMin;
                for (int j = 0; j < QK_K / 16; j++) sc[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
                WriteHalf(yb, 82, maxMin / q4scale);
            }
            else WriteHalf(yb, 82, 0f);
            float dAll = ReadHalf(yb, 80), mAll = ReadHalf(yb, 82);
            for (int j = 0; j < QK_K / 16; j++)
            {
                float d = dAll * (sc[j] & 0xF);
                if (d == 0) continue;
                float dm = mAll * (sc[j] >> 4);
                for (int i = 0; i < 16; i++)
                {
                    int l = NearestInt((xb[16 * j + i] + dm) / d);
                    L[16 * j + i] = (byte)Math.Max(0, Math.Min(3, l));
                }
            }
            for (int j = 0; j < QK_K; j += 128)
                for (int l = 0; l < 32; l++)
                    qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }

    public static void DequantizeQ2_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 84, 84);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 80), min = ReadHalf(block, 82);
            int isc = 0, o = 0;
            for (int n = 0; n < QK_K; n += 128)
            {
                var q = block.Slice(16 + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    byte sc = block[isc++];
                    float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[o++] = dl * ((q[l] >> shift) & 3) - ml;
                    sc = block[isc++];
                    dl = d * (sc & 0xF); ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[o++] = dl * ((q[l + 16] >> shift) & 3) - ml;
                }
            }
        }
    }

    // ====================================================== Q3_K (110 bytes: hmask[32], qs[64], scales[12], d)

    public static void QuantizeQ3_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[QK_K / 16];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * 110, 110);
            var hmask = yb[..32];
            var qs = yb.Slice(32, 64);
            var sc = yb.Slice(96, 12);
            float maxScale = 0, amax = 0;
            for (int j = 0; j < QK_K / 16; j++)
            {
                scales[j] = MakeQ3Quants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16));
                float s = MathF.Abs(scales[j]);
                if (s > amax) { amax = s; maxScale = scales[j]; }
            }
            sc.Clear();
            if (maxScale != 0)
            {
                float iscale = -32f / maxScale;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    sbyte l8 = (sbyte)NearestInt(iscale * scales[j]);
                    int l = Math.Max(-32, Math.Min(31, (int)l8)) + 32;
                    if (j < 8) sc[j] = (byte)(l & 0xF);
                    else sc[j - 8] |= (byte)((l & 0xF) << 4);
                    l >>= 4;
                    sc[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
                }
                WriteHalf(yb, 108, 1 / iscale);
            }
            else WriteHalf(yb, 108, 0f);
            float dAll = ReadHalf(yb, 108);
            for (int j = 0; j < QK_K / 16; j++)
            {
                int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
                s = (sbyte)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
                float d = dAll * s;
                if (d == 0) continue;
                for (int i = 0; i < 16; i++)
                {
                    int l = NearestInt(xb[16 * j + i] / d);
                    L[16 * j + i] = (sbyte)(Math.Max(-4, Math.Min(3, l)) + 4);
                }
            }
            hmask.Clear();
            int m = 0;
            byte hm = 1;
            for (int j = 0; j < QK_K; j++)
            {
                if (L[j] > 3)
                {
                    hmask[m] |= hm;
                    L[j] -= 4;
                }
                if (++m == QK_K / 8) { m = 0; hm <<= 1; }
            }
            for (int j = 0; j < QK_K; j += 128)
                for (int l = 0; l < 32; l++)
                    qs[j / 4 + l] = (byte)((byte)L[j + l] | ((byte)L[j + l + 32] << 2) | ((byte)L[j + l + 64] << 4) | ((byte)L[j + l + 96] << 6));
        }
    }

    /// <summary>The 16 signed 6-bit sub-block scales of a Q3_K block (4 low bits in bytes 0–7, 2 high bits in 8–11).</summary>
    internal static void Q3Scales(ReadOnlySpan<byte> sc, Span<int> scales)
    {
        for (int j = 0; j < 16; j++)
        {
            int low = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
            int high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (low | (high << 4)) - 32;
        }
    }

    public static void DequantizeQ3_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> scales = stackalloc int[16];
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 110, 110);
            var y = dst.Slice(b * QK_K, QK_K);
            var hm = block[..32];
            float dAll = ReadHalf(block, 108);
            Q3Scales(block.Slice(96, 12), scales);
            int isc = 0, o = 0;
            int m = 1;
            for (int n = 0; n < QK_K; n += 128)
            {
                var q = block.Slice(32 + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    float dl = dAll * scales[isc++];
                    for (int l = 0; l < 16; l++) y[o++] = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) != 0 ? 0 : 4));
                    dl = dAll * scales[isc++];
                    for (int l = 0; l < 16; l++) y[o++] = dl * (((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) != 0 ? 0 : 4));
                    m <<= 1;
                }
            }
        }
    }

    // ====================================================== Q4_K (144 bytes) and Q5_K (176 bytes)

    private static void QuantizeQ45K(ReadOnlySpan<float> x, Span<byte> y, bool five)
    {
        int nmax = five ? 31 : 15, blockBytes = five ? 176 : 144;
        Span<byte> L = stackalloc byte[QK_K];
        Span<byte> laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[QK_K / 32];
        Span<float> scales = stackalloc float[QK_K / 32];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * blockBytes, blockBytes);
            var sc = yb.Slice(4, 12);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < QK_K / 32; j++)
            {
                float sumX2 = 0;
                for (int l = 0; l < 32; l++) sumX2 += xb[32 * j + l] * xb[32 * j + l];
                float avX = MathF.Sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xb[32 * j + l]);
                scales[j] = five
                    ? MakeQkx2Quants(32, 31, xb.Slice(32 * j, 32), weights, L.Slice(32 * j, 32), out mins[j], laux, -0.5f, 0.1f, 15, false)
                    : MakeQkx2Quants(32, 15, xb.Slice(32 * j, 32), weights, L.Slice(32 * j, 32), out mins[j], laux, -1f, 0.1f, 20, false);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            sc.Clear();
            for (int j = 0; j < QK_K / 32; j++)
            {
                int ls = Math.Min(63, (int)(byte)NearestInt(invScale * scales[j]));
                int lm = Math.Min(63, (int)(byte)NearestInt(invMin * mins[j]));
                PackScalesMinsK4(sc, j, ls, lm);
            }
            WriteHalf(yb, 0, maxScale / 63f);
            WriteHalf(yb, 2, maxMin / 63f);
            float dAll = ReadHalf(yb, 0), mAll = ReadHalf(yb, 2);
            for (int j = 0; j < QK_K / 32; j++)
            {
                var (s, m) = ScaleMinK4(j, sc);
                float d = dAll * s;
                if (d == 0) continue;
                float dm = mAll * m;
                for (int i = 0; i < 32; i++)
                {
                    int l = NearestInt((xb[32 * j + i] + dm) / d);
                    L[32 * j + i] = (byte)Math.Max(0, Math.Min(nmax, l));
                }
            }
            if (!five)
            {
                var q = yb.Slice(16, 128);
                for (int j = 0; j < QK_K; j += 64)
                    for (int l = 0; l < 32; l++) q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
            }
            else
            {
                var qh = yb.Slice(16, 32);
                var ql = yb.Slice(48, 128);
                qh.Clear();
                byte m1 = 1, m2 = 2;
                for (int n = 0; n < QK_K; n += 64)
                {
                    for (int j = 0; j < 32; j++)
                    {
                        int l1 = L[n + j];
                        if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                        int l2 = L[n + j + 32];
                        if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                        ql[n / 2 + j] = (byte)(l1 | (l2 << 4));
                    }
                    m1 <<= 2; m2 <<= 2;
                }
            }
        }
    }

    public static void QuantizeQ4_K(ReadOnlySpan<float> x, Span<byte> y) => QuantizeQ45K(x, y, five: false);
    public static void QuantizeQ5_K(ReadOnlySpan<float> x, Span<byte> y) => QuantizeQ45K(x, y, five: true);

    public static void DequantizeQ4_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 144, 144);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 0), min = ReadHalf(block, 2);
            var sc = block.Slice(4, 12);
            int o = 0, isc = 0;
            for (int j = 0; j < QK_K; j += 64)
            {
                var q = block.Slice(16 + j / 2, 32);
                var (s1, m1) = ScaleMinK4(isc, sc);
                var (s2, m2) = ScaleMinK4(isc + 1, sc);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; l++) y[o++] = d1 * (q[l] & 0xF) - mm1;
                for (int l = 0; l < 32; l++) y[o++] = d2 * (q[l] >> 4) - mm2;
                isc += 2;
            }
        }
    }

    public static void DequantizeQ5_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 176, 176);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 0), min = ReadHalf(block, 2);
            var sc = block.Slice(4, 12);
            var qh = block.Slice(16, 32);
            int o = 0, isc = 0;
            int u1 = 1, u2 = 2;
            for (int j = 0; j < QK_K; j += 64)
            {
                var ql = block.Slice(48 + j / 2, 32);
                var (s1, m1) = ScaleMinK4(isc, sc);
                var (s2, m2) = ScaleMinK4(isc + 1, sc);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; l++) y[o++] = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - mm1;
                for (int l = 0; l < 32; l++) y[o++] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - mm2;
                isc += 2;
                u1 <<= 2; u2 <<= 2;
            }
        }
    }

    // ====================================================== Q6_K (210 bytes: ql[128], qh[64], scales[16], d)

    public static void QuantizeQ6_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[QK_K / 16];
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * 210, 210);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < QK_K / 16; ib++)
            {
                float scale = MakeQxQuants(16, 32, xb.Slice(16 * ib, 16), L.Slice(16 * ib, 16));
                scales[ib] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (maxAbsScale < GroupMaxEps)
            {
                yb.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            WriteHalf(yb, 208, 1 / iscale);
            var sc = yb.Slice(192, 16);
            for (int ib = 0; ib < QK_K / 16; ib++) sc[ib] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
            float dAll = ReadHalf(yb, 208);
            for (int j = 0; j < QK_K / 16; j++)
            {
                float d = dAll * (sbyte)sc[j];
                if (d == 0) continue;
                for (int i = 0; i < 16; i++)
                {
                    int l = NearestInt(xb[16 * j + i] / d);
                    L[16 * j + i] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            var ql = yb[..128];
            var qh = yb.Slice(128, 64);
            for (int j = 0; j < QK_K; j += 128)
            {
                int qlo = j / 2, qho = j / 4;
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[qlo + l] = (byte)(q1 | (q3 << 4));
                    ql[qlo + l + 32] = (byte)(q2 | (q4 << 4));
                    int h1 = (byte)L[j + l] >> 4, h2 = (byte)L[j + l + 32] >> 4, h3 = (byte)L[j + l + 64] >> 4, h4 = (byte)L[j + l + 96] >> 4;
                    qh[qho + l] = (byte)(h1 | (h2 << 2) | (h3 << 4) | (h4 << 6));
                }
            }
        }
    }

    public static void DequantizeQ6_K(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 210, 210);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 208);
            for (int n = 0; n < QK_K; n += 128)
            {
                var ql = block.Slice(n / 2, 64);
                var qh = block.Slice(128 + n / 4, 32);
                var sc = block.Slice(192 + n / 16, 8);
                for (int l = 0; l < 32; l++)
                {
                    int isc = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[n + l] = d * (sbyte)sc[isc] * q1;
                    y[n + l + 32] = d * (sbyte)sc[isc + 2] * q2;
                    y[n + l + 64] = d * (sbyte)sc[isc + 4] * q3;
                    y[n + l + 96] = d * (sbyte)sc[isc + 6] * q4;
                }
            }
        }
    }
}
