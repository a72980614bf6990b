using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// The fitting routines ggml-quants.c's K-quant reference quantizers share, and the packed sub-block scales of
/// Q3_K, Q4_K and Q5_K. Every float expression keeps ggml's evaluation order, because ggml-base is built without FMA
/// or fast-math and the fixtures hold its exact bytes.
/// </summary>
internal static class KQuantFits
{
    public const int QK_K = 256;
    private const float GroupMaxEps = 1e-15f;

    /// <summary>True when a group's largest magnitude is too small to fit (ggml's GROUP_MAX_EPS).</summary>
    public static bool Negligible(float amax) => amax < GroupMaxEps;

    /// <summary>
    /// Symmetric fit with nmax levels each side (make_qx_quants, rmse_type 1): weights <paramref name="qw"/> (the
    /// imatrix path), or x² when it is empty; searches ±0.9 around the first scale.
    /// </summary>
    public static float MakeQxQuants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, ReadOnlySpan<float> qw = default)
    {
        bool weighted = !qw.IsEmpty;
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
            float w = weighted ? qw[i] : x[i] * x[i];
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
                float w = weighted ? qw[i] : x[i] * x[i];
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
    public static float MakeQ3Quants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
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
    public static float MakeQkx2Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
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

    /// <summary>
    /// Asymmetric (scale and min) fit weighted by <paramref name="weights"/> (make_qkx3_quants, the imatrix paths'
    /// fit): as <see cref="MakeQkx2Quants"/> but a constant group (max ≤ min) gives zero codes, and nothing else differs.
    /// </summary>
    public static float MakeQkx3Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
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
        if (max <= min)
        {
            L[..n].Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestMad += weights[i] * diff;
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
                float mad = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    mad += weights[i] * diff;
                }
                if (mad < bestMad)
                {
                    laux[..n].CopyTo(L);
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>
    /// Fits non-negative values (sub-block scales or mins) to 0..nmax times one scale, minimizing the
    /// <paramref name="quantWeights"/>-weighted error: 8 trial scales around max/nmax, then up to 5 rounds of
    /// coordinate descent on the levels (make_qp_quants). The levels are uint8 as in ggml, so a negative level wraps.
    /// </summary>
    public static float MakeQpQuants(int n, int nmax, ReadOnlySpan<float> x, Span<byte> L, ReadOnlySpan<float> quantWeights)
    {
        float max = 0;
        for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
        if (max == 0)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; i++) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; i++)
        {
            float diff = x[i] - scale * L[i];
            float w = quantWeights[i];
            bestMse += w * diff * diff;
        }
        for (int step = -4; step <= 4; step++)
        {
            if (step == 0) continue;
            float iscaleIs = (0.1f * step + nmax) / max;
            float scaleIs = 1 / iscaleIs;
            float mse = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Min(nmax, NearestInt(iscaleIs * x[i]));
                float diff = x[i] - scaleIs * l;
                float w = quantWeights[i];
                mse += w * diff * diff;
            }
            if (mse < bestMse)
            {
                bestMse = mse;
                iscale = iscaleIs;
            }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            float w = quantWeights[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = quantWeights[i];
                float slx = sumlx - w * x[i] * L[i];
                float sl2 = suml2 - w * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL; sumlx = slx; suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        return sumlx / suml2;
    }

    /// <summary>The 6-bit scale and min of sub-block j from Q4_K/Q5_K's 12 packed bytes (get_scale_min_k4).</summary>
    public static (int Scale, int Min) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    public static void PackScalesMinsK4(Span<byte> scales, int j, int ls, int lm)
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

    /// <summary>The 16 signed 6-bit sub-block scales of a Q3_K block (4 low bits in bytes 0–7, 2 high bits in 8–11).</summary>
    public static void Q3Scales(ReadOnlySpan<byte> sc, Span<int> scales)
    {
        for (int j = 0; j < 16; j++)
        {
            int low = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
            int high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (low | (high << 4)) - 32;
        }
    }


    /// <summary>
    /// Q4_K's and Q5_K's fit of one 256-weight block (quantize_row_q4_K_ref / q5_K_ref up to the code packing):
    /// an asymmetric fit per 32 weights weighted by av|x| + |x|, scales and mins to 6 bits in <paramref name="sc"/>
    /// (12 bytes), d and dmin returned as stored, codes (0..nmax) into <paramref name="L"/>.
    /// </summary>
    public static (Half D, Half DMin) FitScaleMin32(ReadOnlySpan<float> xb, bool five, Span<byte> sc, Span<byte> L)
    {
        int nmax = five ? 31 : 15;
        Span<byte> laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[QK_K / 32];
        Span<float> scales = stackalloc float[QK_K / 32];
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
        var d = (Half)(maxScale / 63f);
        var dmin = (Half)(maxMin / 63f);
        RequantizeScaleMin32(xb, nmax, d, dmin, sc, L);
        return (d, dmin);
    }

    /// <summary>
    /// The fit of <see cref="FitScaleMin32(ReadOnlySpan{float}, bool, Span{byte}, Span{byte})"/> with an importance matrix (quantize_row_q4_K_impl / q5_K_impl): each weight's error
    /// counts qw·sqrt(σ² + x²) (σ² = 2·mean x² of the block), the sub-blocks are fitted by make_qkx3_quants and their
    /// scales and mins by make_qp_quants weighted by each sub-block's total weight. Q5_K clamps the 6-bit levels to 63,
    /// Q4_K stores them as they come (<paramref name="five"/>).
    /// </summary>
    public static (Half D, Half DMin) FitScaleMin32(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, bool five, Span<byte> sc, Span<byte> L)
    {
        int nmax = five ? 31 : 15;
        Span<byte> laux = stackalloc byte[32];
        Span<byte> ls = stackalloc byte[QK_K / 32];
        Span<byte> lm = stackalloc byte[QK_K / 32];
        Span<float> weights = stackalloc float[32];
        Span<float> sw = stackalloc float[QK_K / 32];
        Span<float> mins = stackalloc float[QK_K / 32];
        Span<float> scales = stackalloc float[QK_K / 32];
        float sumX2 = 0;
        for (int l = 0; l < QK_K; l++) sumX2 += xb[l] * xb[l];
        float sigma2 = 2 * sumX2 / QK_K;
        for (int j = 0; j < QK_K / 32; j++)
        {
            for (int l = 0; l < 32; l++) weights[l] = qw[32 * j + l] * MathF.Sqrt(sigma2 + xb[32 * j + l] * xb[32 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 32; l++) sumw += weights[l];
            sw[j] = sumw;
            scales[j] = MakeQkx3Quants(32, nmax, xb.Slice(32 * j, 32), weights, L.Slice(32 * j, 32), out mins[j], laux, -0.9f, 0.05f, 36, false);
        }
        float dBlock = MakeQpQuants(QK_K / 32, 63, scales, ls, sw);
        float mBlock = MakeQpQuants(QK_K / 32, 63, mins, lm, sw);
        sc.Clear();
        for (int j = 0; j < QK_K / 32; j++)
            PackScalesMinsK4(sc, j, five ? Math.Min((byte)63, ls[j]) : ls[j], five ? Math.Min((byte)63, lm[j]) : lm[j]);
        var d = (Half)dBlock;
        var dmin = (Half)mBlock;
        RequantizeScaleMin32(xb, nmax, d, dmin, sc, L);
        return (d, dmin);
    }

    /// <summary>Re-maps every weight against its sub-block's stored scale and min (the last pass of both fits).</summary>
    private static void RequantizeScaleMin32(ReadOnlySpan<float> xb, int nmax, Half d, Half dmin, ReadOnlySpan<byte> sc, Span<byte> L)
    {
        float dAll = (float)d, mAll = (float)dmin;
        for (int j = 0; j < QK_K / 32; j++)
        {
            var (s, m) = ScaleMinK4(j, sc);
            float dj = dAll * s;
            if (dj == 0) continue;
            float dm = mAll * m;
            for (int i = 0; i < 32; i++)
            {
                int l = NearestInt((xb[32 * j + i] + dm) / dj);
                L[32 * j + i] = (byte)Math.Max(0, Math.Min(nmax, l));
            }
        }
    }

    /// <summary>Q4_K's and Q5_K's sub-block scales and mins, each repeated for both 16-value halves.</summary>
    public static void ScalesMins32(ReadOnlySpan<byte> sc, Span<int> scales16, Span<int> mins16)
    {
        for (int s = 0; s < 8; s++)
        {
            var (scale, min) = ScaleMinK4(s, sc);
            scales16[2 * s] = scales16[2 * s + 1] = scale;
            mins16[2 * s] = mins16[2 * s + 1] = min;
        }
    }
}
