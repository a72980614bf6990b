using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// ggml's fit of the IQ2 types (quantize_row_iq2_xxs_impl, quantize_row_iq2_xs_impl, quantize_row_iq2_s_impl) for one
/// group of 16 or 32 weights: signs split off (for IQ2_XXS and IQ2_XS flipped to an even count at the least
/// important weight, so 7 bits store them), magnitudes fitted as scale·(2l + 1) with every 8 levels a point of the
/// type's <see cref="IQ2Lattice"/>, the scale searched over trial values around the group's maximum (or, for IQ2_XXS,
/// make_qp_quants' scale) and refined by weighted least squares. The three C functions are one algorithm with the
/// differences named by <see cref="Options"/>; every float expression keeps ggml's order, and the levels carry over
/// from one group to the next as ggml's L array does (a group no trial improves keeps them), so the bytes are
/// llama.cpp's.
/// </summary>
internal static class IQ2Fit
{
    private const int KMaxQ = 3;

    /// <summary>What differs between the three quantizers.</summary>
    /// <param name="EvenSigns">IQ2_XXS, IQ2_XS: 7 stored sign bits, the 8th implied by even parity.</param>
    /// <param name="MaxEps">GROUP_MAX_EPS (1e-15) or GROUP_MAX_EPS_IQ2_S (1e-8): below it a group is all zero.</param>
    /// <param name="QpStart">IQ2_XXS: the first scale is make_qp_quants', trials ±0.6 around it, and afterwards every
    /// group of 8 is re-rounded; otherwise the first scale is max/5, trials ±0.9, and only off-grid groups are.</param>
    /// <param name="ClearOnSkip">IQ2_XXS, IQ2_XS zero the carried levels when a group is all zero; IQ2_S does not.</param>
    public readonly record struct Options(bool EvenSigns, float MaxEps, bool QpStart, bool ClearOnSkip);

    /// <summary>
    /// Fits one group <paramref name="xb"/> (16 or 32 weights) with per-weight <paramref name="weight"/>: returns its
    /// scale (0 for an all-zero group) and writes each 8's grid index and sign byte (both 0 for an all-zero group).
    /// <paramref name="L"/> holds the levels and carries them from group to group (ggml's L; zeroed per row).
    /// </summary>
    public static float FitGroup(IQ2Lattice lattice, Options o, ReadOnlySpan<float> xb, ReadOnlySpan<float> weight, Span<sbyte> L,
        Span<int> gridIndex, Span<byte> signs, string typeName)
    {
        int n = xb.Length, groups = n / 8;
        Span<float> waux = stackalloc float[n], xval = stackalloc float[n];
        Span<sbyte> laux = stackalloc sbyte[n];
        Span<byte> lqp = stackalloc byte[n];
        Span<bool> onGrid = stackalloc bool[groups], onGridAux = stackalloc bool[groups];
        gridIndex.Clear();
        signs.Clear();
        for (int i = 0; i < n; ++i) waux[i] = MathF.Sqrt(weight[i]);
        Span<byte> blockSigns = stackalloc byte[groups];
        for (int k = 0; k < groups; ++k)
        {
            int nflip = 0;
            byte s = 0;
            for (int i = 0; i < 8; ++i)
            {
                if (xb[8 * k + i] >= 0) xval[8 * k + i] = xb[8 * k + i];
                else
                {
                    xval[8 * k + i] = -xb[8 * k + i]; ++nflip; s |= (byte)(1 << i);
                }
            }
            if (o.EvenSigns && nflip % 2 != 0)
            {
                int imin = 0; float min = weight[8 * k + imin] * xb[8 * k + imin] * xb[8 * k + imin];
                for (int i = 1; i < 8; ++i)
                {
                    float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                    if (ax < min)
                    {
                        min = ax; imin = i;
                    }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                s ^= (byte)(1 << imin);
            }
            blockSigns[k] = o.EvenSigns ? (byte)(s & 127) : s;
        }
        float max = xval[0];
        for (int i = 1; i < n; ++i) max = max > xval[i] ? max : xval[i];
        if (max < o.MaxEps)
        {
            if (o.ClearOnSkip) L.Clear();
            return 0;
        }

        float scale, best = 0, idBase;
        int trials;
        if (o.QpStart)
        {
            scale = KQuantFits.MakeQpQuants(n, KMaxQ + 1, xval, lqp, weight);
            for (int i = 0; i < n; ++i) L[i] = (sbyte)lqp[i]; // ggml passes (uint8_t*)L
            idBase = scale * KMaxQ; // eff_max
            trials = 6;
        }
        else
        {
            scale = max / (2 * KMaxQ - 1);
            idBase = max;
            trials = 9;
        }
        onGrid.Fill(true);
        for (int itry = -trials; itry <= trials; ++itry)
        {
            float id = (2 * KMaxQ - 1 + itry * 0.1f) / idBase;
            float thisScale = 1 / id;
            for (int k = 0; k < groups; ++k)
            {
                for (int i = 0; i < 8; ++i)
                {
                    int l = NearestInt(0.5f * (id * xval[8 * k + i] - 1));
                    laux[8 * k + i] = (sbyte)Math.Max(0, Math.Min(KMaxQ - 1, l));
                }
                int u = Key(laux.Slice(8 * k, 8));
                onGridAux[k] = true;
                if (lattice.Map[u] < 0)
                {
                    onGridAux[k] = false;
                    lattice.FindBestNeighbour(lattice.NeighboursOf(u), xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), thisScale, laux.Slice(8 * k, 8));
                }
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < n; ++i)
            {
                float w = weight[i];
                float q = 2 * laux[i] + 1;
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
            {
                scale = sumqx / sumq2; best = scale * sumqx;
                laux.CopyTo(L);
                onGridAux.CopyTo(onGrid);
            }
        }
        // IQ2_XXS re-rounds every group at the final scale; IQ2_XS and IQ2_S only those the best trial had off the grid.
        bool any = false;
        for (int k = 0; k < groups; ++k)
        {
            if (o.QpStart) onGrid[k] = false;
            any |= !onGrid[k];
        }
        if (any && scale > 0)
        {
            float id = 1 / scale;
            for (int k = 0; k < groups; ++k)
            {
                if (onGrid[k]) continue;
                for (int i = 0; i < 8; ++i)
                {
                    int l = NearestInt(0.5f * (id * xval[8 * k + i] - 1));
                    L[8 * k + i] = (sbyte)Math.Max(0, Math.Min(KMaxQ - 1, l));
                }
                int u = Key(L.Slice(8 * k, 8));
                if (lattice.Map[u] < 0)
                    lattice.FindBestNeighbour(lattice.NeighboursOf(u), xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), scale, L.Slice(8 * k, 8));
            }
            float sumqx = 0, sumq2 = 0;
            for (int i = 0; i < n; ++i)
            {
                float w = weight[i];
                float q = 2 * L[i] + 1;
                sumqx += w * xval[i] * q;
                sumq2 += w * q * q;
            }
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0)
        {
            // ggml: "should never happen"; the scale is stored unsigned, so the signs flip instead.
            scale = -scale;
            for (int k = 0; k < groups; ++k) blockSigns[k] = (byte)(~blockSigns[k] & (o.EvenSigns ? 127 : 255));
        }
        for (int k = 0; k < groups; ++k)
        {
            int u = Key(L.Slice(8 * k, 8));
            // ggml aborts here ("found point not on grid") and on a NaN scale (GGML_ASSERT(scale >= 0)): only
            // degenerate groups reach it (e.g. IQ2_XXS with every importance weight of a group zero).
            if (u >= IQ2Lattice.MapSize || lattice.Map[u] < 0 || !(scale >= 0))
                throw new AnyBitException($"{typeName}: a group of weights has no fit on the grid (llama.cpp aborts on it too); check the tensor and importance values for zeros, NaN or infinities");
            gridIndex[k] = lattice.Map[u];
            signs[k] = blockSigns[k];
        }
        return scale;
    }

    /// <summary>The lattice key of 8 levels: Σ l·4^k as ggml's uint16_t u (levels outside 0..2 only from a degenerate make_qp_quants).</summary>
    private static int Key(ReadOnlySpan<sbyte> l)
    {
        int u = 0;
        for (int i = 0; i < 8; ++i) u |= l[i] << 2 * i;
        return (ushort)u;
    }

    /// <summary>
    /// The super-block scale and the 4-bit group scales: d = max_scale/31, group scale l = round(0.5·(scale/d − 1))
    /// clamped to 0..15 (dequantized as d·(0.5 + l)/4). Returns d (the stored value is ggml's f16 of it, for IQ2_S of
    /// d·0.9875) and writes each group's l.
    /// </summary>
    public static float GroupScales(ReadOnlySpan<float> scales, float maxScale, Span<int> l)
    {
        float d = maxScale / 31;
        float id = 1 / d;
        for (int ib = 0; ib < scales.Length; ++ib)
        {
            int v = NearestInt(0.5f * (id * scales[ib] - 1));
            l[ib] = Math.Max(0, Math.Min(15, v));
        }
        return d;
    }

    /// <summary>Σx² of a super-block, summed in order (ggml's sumx2).</summary>
    public static float SumSquares(ReadOnlySpan<float> xbl)
    {
        float sumx2 = 0;
        for (int i = 0; i < xbl.Length; ++i) sumx2 += xbl[i] * xbl[i];
        return sumx2;
    }
}

/// <summary>
/// The integer form the IQ2 types decode to (<see cref="DecodedBlock"/>): each weight a code 0..5 standing for the
/// signed grid magnitude −43, −25, −8, 8, 25, 43 (<see cref="Lut"/> + offset −128), one sub-scale 2l + 1 (1..31) per
/// 16 weights and D = d/8, so that D·(2l + 1)·level is ggml's d·(0.5 + l)·0.25·grid·sign exactly (all three products
/// are exact in float: d is an f16, l ≤ 15, levels ≤ 43).
/// </summary>
internal static class IQ2Levels
{
    public static readonly byte[] Lut = [128 - 43, 128 - 25, 128 - 8, 128 + 8, 128 + 25, 128 + 43];

    /// <summary><see cref="Lut"/> in the form <see cref="TableLookup"/> reads (for a kernel that runs these types).</summary>
    public static readonly nint Tables = TableLookup.Create(Lut, null);

    /// <summary>The codes of 8 weights: grid entry <paramref name="grid"/> (one magnitude per byte) with sign bits
    /// <paramref name="signs"/> (weight j negative when bit j is set, kmask_iq2xs).</summary>
    public static void Decode8(ulong grid, byte signs, Span<byte> codes)
    {
        for (int j = 0; j < 8; ++j)
        {
            int g = (byte)(grid >> (8 * j));
            int m = (g > 8 ? 1 : 0) + (g > 25 ? 1 : 0);
            codes[j] = (byte)((signs & IQ2Grids.kmask_iq2xs[j]) != 0 ? 2 - m : 3 + m);
        }
    }
}
