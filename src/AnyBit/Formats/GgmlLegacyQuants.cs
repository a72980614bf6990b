using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats;

/// <summary>
/// ggml's 32-element block types, quantized as llama.cpp's <c>quantize_row_*_ref</c> functions do (byte for byte) and
/// dequantized as its <c>dequantize_row_*</c>. Layouts (ggml-common.h), all fp16 little-endian:
/// Q4_0 { d; qs[16] }, Q4_1 { d; m; qs[16] }, Q5_0 { d; qh[4]; qs[16] }, Q5_1 { d; m; qh[4]; qs[16] }, Q8_0 { d; qs[32] },
/// IQ4_NL { d; qs[16] }, MXFP4 { e8m0 e; qs[16] }. In nibble-packed types byte j holds element j (low nibble) and
/// element j+16 (high nibble); Q5's fifth bits are bit j of the little-endian u32 qh.
/// </summary>
public static class GgmlLegacyQuants
{
    private const int QK = 32;

    // ---- Q4_0: d = max/−8 (signed value of largest magnitude), q = min(15, trunc(x/d + 8.5)) ----
    public static void QuantizeQ4_0(ReadOnlySpan<float> x, Span<byte> y) =>
        QuantizeSignedMax(x, y, 8, 18, static (q, block) => PackNibbles(q, block.Slice(2, 16)));

    private delegate void CodePacker(ReadOnlySpan<int> codes, Span<byte> block);

    /// <summary>Blocks of one fp16 scale d = max/−half and codes min(2·half−1, trunc(x/d + half + 0.5)): Q4_0 and Q5_0.</summary>
    private static void QuantizeSignedMax(ReadOnlySpan<float> x, Span<byte> y, int half, int blockBytes, CodePacker pack)
    {
        Span<int> q = stackalloc int[QK];
        float offset = half + 0.5f;
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * blockBytes, blockBytes);
            float max = SignedMaxMagnitude(xb, out _);
            float d = max / -half;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteHalf(yb, 0, d);
            for (int j = 0; j < QK; j++) q[j] = Math.Min(2 * half - 1, (int)(sbyte)(int)(xb[j] * id + offset));
            pack(q, yb);
        }
    }

    public static void DequantizeQ4_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 18, 18);
            float d = ReadHalf(block, 0);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = (Nibble(block.Slice(2, 16), j) - 8) * d;
        }
    }

    // ---- Q4_1: d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)) ----
    public static void QuantizeQ4_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<int> q = stackalloc int[QK];
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * 20, 20);
            var (min, max) = MinMax(xb);
            float d = (max - min) / 15;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteHalf(yb, 0, d);
            WriteHalf(yb, 2, min);
            for (int j = 0; j < QK; j++) q[j] = Math.Min(15, (int)(sbyte)(int)((xb[j] - min) * id + 0.5f));
            PackNibbles(q, yb.Slice(4, 16));
        }
    }

    public static void DequantizeQ4_1(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 20, 20);
            float d = ReadHalf(block, 0), m = ReadHalf(block, 2);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = Nibble(block.Slice(4, 16), j) * d + m;
        }
    }

    // ---- Q5_0: d = max/−16, q = min(31, trunc(x/d + 16.5)) ----
    public static void QuantizeQ5_0(ReadOnlySpan<float> x, Span<byte> y) =>
        QuantizeSignedMax(x, y, 16, 22, static (q, block) => PackFiveBit(q, block.Slice(2, 4), block.Slice(6, 16)));

    public static void DequantizeQ5_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 22, 22);
            float d = ReadHalf(block, 0);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = (FiveBitCode(block.Slice(2, 4), block.Slice(6, 16), j) - 16) * d;
        }
    }

    // ---- Q5_1: d = (max − min)/31, m = min, q = trunc((x − min)/d + 0.5) ----
    public static void QuantizeQ5_1(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<int> q = stackalloc int[QK];
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * 24, 24);
            var (min, max) = MinMax(xb);
            float d = (max - min) / 31;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteHalf(yb, 0, d);
            WriteHalf(yb, 2, min);
            for (int j = 0; j < QK; j++) q[j] = (byte)(int)((xb[j] - min) * id + 0.5f);
            PackFiveBit(q, yb.Slice(4, 4), yb.Slice(8, 16));
        }
    }

    public static void DequantizeQ5_1(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 24, 24);
            float d = ReadHalf(block, 0), m = ReadHalf(block, 2);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = FiveBitCode(block.Slice(4, 4), block.Slice(8, 16), j) * d + m;
        }
    }

    /// <summary>
    /// The 4-bit layout of every 32-weight nibble type (Q4_0, Q4_1, IQ4_NL, MXFP4, and Q5's low bits): byte j holds
    /// element j in its low nibble and element j+16 in its high nibble.
    /// </summary>
    private static void PackNibbles(ReadOnlySpan<int> q, Span<byte> qs)
    {
        for (int j = 0; j < QK / 2; j++) qs[j] = (byte)((q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4));
    }

    /// <summary>The 4-bit code of element j (0..31) in that layout.</summary>
    internal static int Nibble(ReadOnlySpan<byte> qs, int j) => j < QK / 2 ? qs[j] & 0x0F : qs[j - QK / 2] >> 4;

    /// <summary>
    /// Q5's code layout: the low nibbles as in Q4 (byte j holds element j low and element j+16 high) and the fifth
    /// bits as bit j of a little-endian u32 qh.
    /// </summary>
    private static void PackFiveBit(ReadOnlySpan<int> q, Span<byte> qh, Span<byte> qs)
    {
        PackNibbles(q, qs);
        uint high = 0;
        for (int j = 0; j < QK; j++) high |= (uint)((q[j] & 0x10) >> 4) << j;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(qh, high);
    }

    /// <summary>The 5-bit code of element j (0..31) of a Q5 block.</summary>
    internal static int FiveBitCode(ReadOnlySpan<byte> qh, ReadOnlySpan<byte> qs, int j)
    {
        uint high = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(qh);
        return Nibble(qs, j) | (int)((high >> j) & 1) << 4;
    }

    // ---- Q8_0: d = amax/127, q = roundf(x/d) ----
    public static void QuantizeQ8_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * 34, 34);
            float amax = 0;
            foreach (float v in xb) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteHalf(yb, 0, d);
            for (int j = 0; j < QK; j++) yb[2 + j] = (byte)(sbyte)RoundAway(xb[j] * id);
        }
    }

    public static void DequantizeQ8_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 34, 34);
            float d = ReadHalf(block, 0);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = (sbyte)block[2 + j] * d;
        }
    }

    // ---- IQ4_NL: d · kvalues_iq4nl[q] ----

    /// <summary>
    /// IQ4_NL as llama-quantize writes it without an importance matrix: ggml's quantize_iq4_nl, i.e. the
    /// x²-weighted least-squares scale refined over 15 trial scales (ntry = 7), then every weight re-mapped to its
    /// nearest code. (quantize_row_iq4_nl_ref skips the search and gives different bytes.)
    /// </summary>
    public static void QuantizeIq4Nl(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int ntry = 7;
        var values = Iq4NlValues;
        Span<float> weight = stackalloc float[QK];
        Span<int> L = stackalloc int[QK];
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * 18, 18);
            yb.Clear();
            for (int j = 0; j < QK; j++) weight[j] = xb[j] * xb[j];
            float max = SignedMaxMagnitude(xb, out float amax);
            float scale = 0;
            if (amax >= 1e-15f)
            {
                float d = -max / values[0];
                float id = 1 / d;
                float sumqx = 0, sumq2 = 0;
                for (int j = 0; j < QK; j++)
                {
                    int l = BestIndex(values, id * xb[j]);
                    float q = values[l];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                d = sumq2 > 0 ? sumqx / sumq2 : 0f;
                float best = d * sumqx;
                for (int itry = -ntry; itry <= ntry; itry++)
                {
                    id = (itry + values[0]) / max;
                    sumqx = sumq2 = 0;
                    for (int j = 0; j < QK; j++)
                    {
                        int l = BestIndex(values, id * xb[j]);
                        float q = values[l];
                        float w = weight[j];
                        sumqx += w * q * xb[j];
                        sumq2 += w * q * q;
                    }
                    if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                    {
                        d = sumqx / sumq2;
                        best = d * sumqx;
                    }
                }
                scale = d;
            }
            WriteHalf(yb, 0, scale);
            float inv = scale != 0 ? 1 / scale : 0;
            for (int j = 0; j < QK; j++) L[j] = BestIndex(values, inv * xb[j]);
            PackNibbles(L, yb.Slice(2, 16));
        }
    }

    /// <summary>Index of the code value nearest x in an ascending table (ties go to the larger value).</summary>
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

    public static void DequantizeIq4Nl(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 18, 18);
            float d = ReadHalf(block, 0);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = d * Iq4NlValues[Nibble(block.Slice(2, 16), j)];
        }
    }

    // ---- MXFP4: e = floor(log2 amax) − 2 + 127; nearest doubled-E2M1 value times 2^(e−128), ties to the lower index ----
    public static void QuantizeMxfp4(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<int> q = stackalloc int[QK];
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xb = x.Slice(b * QK, QK);
            var yb = y.Slice(b * 17, 17);
            float amax = 0;
            foreach (float v in xb) if (amax < MathF.Abs(v)) amax = MathF.Abs(v);
            byte e = amax > 0 ? (byte)(int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
            float d = E8M0Half(e);
            yb[0] = e;
            for (int j = 0; j < QK; j++) q[j] = BestMxfp4(xb[j], d);
            PackNibbles(q, yb.Slice(1, 16));
        }
    }

    private static int BestMxfp4(float x, float e)
    {
        int best = 0;
        float bestErr = MathF.Abs(Mxfp4Values[0] * e - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(Mxfp4Values[i] * e - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }

    public static void DequantizeMxfp4(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK; b++)
        {
            var block = src.Slice(b * 17, 17);
            float d = E8M0Half(block[0]);
            for (int j = 0; j < QK; j++) dst[b * QK + j] = Mxfp4Values[Nibble(block.Slice(1, 16), j)] * d;
        }
    }
}
