using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// What IQ4_NL and IQ4_XS share: the 16 non-linear levels (kvalues_iq4nl) and ggml's fit of a super-block to them
/// (quantize_row_iq4_nl_impl): per 32 weights an x²- (or importance-) weighted least-squares scale refined over
/// 2·ntry + 1 trial scales; with several blocks per super-block, the block scales are then quantized to signed 6 bits
/// of one f16 super-scale and every weight is re-mapped against its block's stored scale. Each float expression
/// keeps ggml's order, so the bytes are llama.cpp's.
/// </summary>
internal static class NonLinear4
{
    private const int Block = 32;

    /// <summary>The 16 levels (kvalues_iq4nl).</summary>
    public static readonly sbyte[] Values = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>
    /// Fits one super-block of <paramref name="x"/>: returns its f16 scale, writes the packed 4-bit indices into
    /// <paramref name="q4"/> (16 bytes per 32 weights, the nibble layout) and, with several blocks, the 6-bit block
    /// scales into <paramref name="scalesL"/> and <paramref name="scalesH"/>. <paramref name="importance"/>: the
    /// importance of each weight (imatrix), or empty.
    /// </summary>
    public static Half Fit(ReadOnlySpan<float> x, Span<byte> q4, Span<byte> scalesL, ref ushort scalesH, ReadOnlySpan<float> importance, int ntry = 7)
    {
        int n = x.Length, blocks = n / Block;
        var values = Values;
        Span<float> weight = stackalloc float[Block];
        Span<float> scales = stackalloc float[blocks];
        Span<byte> L = stackalloc byte[n];
        float sigma2 = 0;
        for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
        sigma2 *= 2f / n;
        q4.Clear();
        Half dh = (Half)0f;
        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < blocks; ++ib)
        {
            var xb = x.Slice(ib * Block, Block);
            var lb = L.Slice(ib * Block, Block);
            if (!importance.IsEmpty)
            {
                var qw = importance.Slice(ib * Block, Block);
                for (int j = 0; j < Block; ++j) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
            }
            else
            {
                for (int j = 0; j < Block; ++j) weight[j] = xb[j] * xb[j];
            }
            float max = SignedMaxMagnitude(xb, out float amax);
            if (KQuantFits.Negligible(amax))
            {
                scales[ib] = 0;
                continue;
            }
            float d = ntry > 0 ? -max / values[0] : max / values[0];
            float id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < Block; ++j)
            {
                int l = BestIndex(values, id * xb[j]);
                lb[j] = (byte)l;
                float q = values[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            d = sumqx / sumq2;
            float best = d * sumqx;
            for (int itry = -ntry; itry <= ntry; ++itry)
            {
                id = (itry + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < Block; ++j)
                {
                    int l = BestIndex(values, id * xb[j]);
                    float q = values[l];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    d = sumqx / sumq2; best = d * sumqx;
                }
            }
            scales[ib] = d;
            float absD = MathF.Abs(d);
            if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
        }

        if (blocks > 1)
        {
            scalesH = 0;
            float d = -maxScale / 32;
            dh = (Half)d;
            float id = d != 0 ? 1 / d : 0f;
            for (int ib = 0; ib < blocks; ++ib)
            {
                int l = NearestInt(id * scales[ib]);
                l = Math.Max(-32, Math.Min(31, l));
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0f;
                var lb = L.Slice(ib * Block, Block);
                var xb = x.Slice(ib * Block, Block);
                for (int j = 0; j < Block; ++j) lb[j] = (byte)BestIndex(values, idl * xb[j]);
                l += 32;
                byte lLow = (byte)(l & 0xf), lHigh = (byte)(l >> 4);
                if (ib % 2 == 0) scalesL[ib / 2] = lLow;
                else scalesL[ib / 2] |= (byte)(lLow << 4);
                scalesH |= (ushort)(lHigh << (2 * (ib % 8)));
            }
        }
        else
        {
            dh = (Half)scales[0];
            if (ntry > 0)
            {
                float id = scales[0] != 0 ? 1 / scales[0] : 0;
                for (int j = 0; j < n; ++j) L[j] = (byte)BestIndex(values, id * x[j]);
            }
        }

        for (int i = 0; i < n / 32; ++i)
            for (int j = 0; j < 16; ++j)
                q4[16 * i + j] = (byte)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
        return dh;
    }

    /// <summary>Index of the level nearest x (best_index_int8: ties go to the larger level).</summary>
    private static int BestIndex(sbyte[] values, float x)
    {
        int n = values.Length;
        if (x <= values[0]) return 0;
        if (x >= values[n - 1]) return n - 1;
        int lo = 0, hi = n - 1;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (x < values[mid]) hi = mid; else lo = mid;
        }
        return x - values[hi - 1] < values[hi] - x ? hi - 1 : hi;
    }

    /// <summary>The kernels' table: each index's level + 128, unsigned (offset −128).</summary>
    public static readonly byte[] Lut = Values.Select(v => (byte)(v + 128)).ToArray();

    /// <summary><see cref="Lut"/> in the form <see cref="Kernels.Quantized.TableLookup"/> reads, shared by both types' kernels.</summary>
    public static readonly nint Tables = Kernels.Quantized.TableLookup.Create(Lut, null);
}
