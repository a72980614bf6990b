using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats;

/// <summary>
/// ggml's ternary types (llama.cpp <c>quantize_row_tq{1,2}_0_ref</c>): d = absmax of the 256-weight block,
/// trit t = lroundf(x/d) + 1 ∈ {0, 1, 2}, value (t − 1)·d.
/// TQ1_0 { qs[48]; qh[4]; d } packs five trits per byte as q = Σ t_n·3^(4−n) stored as ⌈q·256/243⌉, so that
/// trit n is read back as ((u8)(b·3^n)·3) >> 8. qs[0..31] hold elements m + 32n, qs[32..47] the next 80 as m + 16n,
/// qh[0..3] the last 16 as m + 4n (four trits, the fifth zero). 1.6875 bits per weight.
/// TQ2_0 { qs[64]; d } stores 2-bit trits: in each 32-byte half, byte m holds element m + 32n in bits 2n. 2.0625 bits.
/// </summary>
public static class GgmlTernaryQuants
{
    private const int QK_K = 256;
    private static readonly byte[] Pow3 = [1, 3, 9, 27, 81, 243];

    private static float BlockScale(ReadOnlySpan<float> x, out float id)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        id = amax != 0 ? 1.0f / amax : 0.0f;
        return amax;
    }

    private static byte PackTrits(ReadOnlySpan<float> x, int first, int stride, int count, float id)
    {
        int q = 0;
        for (int n = 0; n < count; n++) q = q * 3 + (RoundAway(x[first + n * stride] * id) + 1);
        for (int n = count; n < 5; n++) q *= 3;
        return (byte)((q * 256 + 242) / 243);
    }

    public static void QuantizeTq1_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * 54, 54);
            float d = BlockScale(xb, out float id);
            WriteHalf(yb, 52, d);
            for (int m = 0; m < 32; m++) yb[m] = PackTrits(xb, m, 32, 5, id);
            for (int m = 0; m < 16; m++) yb[32 + m] = PackTrits(xb, 160 + m, 16, 5, id);
            for (int m = 0; m < 4; m++) yb[48 + m] = PackTrits(xb, 240 + m, 4, 4, id);
        }
    }

    internal static int Trit(byte b, int n) => ((byte)(b * Pow3[n]) * 3) >> 8;

    public static void DequantizeTq1_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 54, 54);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 52);
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 32; m++) y[n * 32 + m] = (Trit(block[m], n) - 1) * d;
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 16; m++) y[160 + n * 16 + m] = (Trit(block[32 + m], n) - 1) * d;
            for (int n = 0; n < 4; n++)
                for (int m = 0; m < 4; m++) y[240 + n * 4 + m] = (Trit(block[48 + m], n) - 1) * d;
        }
    }

    public static void QuantizeTq2_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / QK_K; b++)
        {
            var xb = x.Slice(b * QK_K, QK_K);
            var yb = y.Slice(b * 66, 66);
            float d = BlockScale(xb, out float id);
            WriteHalf(yb, 64, d);
            for (int half = 0; half < 2; half++)
                for (int m = 0; m < 32; m++)
                {
                    int q = 0;
                    for (int n = 0; n < 4; n++) q |= ((RoundAway(xb[half * 128 + m + n * 32] * id) + 1) & 3) << (2 * n);
                    yb[half * 32 + m] = (byte)q;
                }
        }
    }

    public static void DequantizeTq2_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / QK_K; b++)
        {
            var block = src.Slice(b * 66, 66);
            var y = dst.Slice(b * QK_K, QK_K);
            float d = ReadHalf(block, 64);
            for (int half = 0; half < 2; half++)
                for (int n = 0; n < 4; n++)
                    for (int m = 0; m < 32; m++) y[half * 128 + n * 32 + m] = (((block[half * 32 + m] >> (2 * n)) & 3) - 1) * d;
        }
    }
}
