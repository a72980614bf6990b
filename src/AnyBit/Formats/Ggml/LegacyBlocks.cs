using System.Buffers.Binary;
using System.Numerics;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// What ggml's 32-weight block types share: the nibble layout (byte j holds element j in its low nibble and element
/// j+16 in its high one), Q5's fifth bits (bit j of a little-endian u32), and the signed-max fit of Q4_0 and Q5_0.
/// </summary>
internal static class LegacyBlocks
{
    public const int QK = 32;

    /// <summary>Packs 32 codes in the nibble layout.</summary>
    public static void PackNibbles<T>(ReadOnlySpan<T> q, Span<byte> qs) where T : IBinaryInteger<T>
    {
        for (int j = 0; j < QK / 2; j++) qs[j] = (byte)((int.CreateTruncating(q[j]) & 0x0F) | ((int.CreateTruncating(q[j + QK / 2]) & 0x0F) << 4));
    }

    /// <summary>Unpacks the nibble layout into 32 codes in value order.</summary>
    public static void UnpackNibbles(ReadOnlySpan<byte> qs, Span<byte> codes)
    {
        for (int j = 0; j < QK / 2; j++) { codes[j] = (byte)(qs[j] & 15); codes[j + QK / 2] = (byte)(qs[j] >> 4); }
    }

    /// <summary>Packs 32 five-bit codes: low nibbles as <see cref="PackNibbles"/>, fifth bits into <paramref name="qh"/>.</summary>
    public static void PackFiveBit<T>(ReadOnlySpan<T> q, Span<byte> qh, Span<byte> qs) where T : IBinaryInteger<T>
    {
        PackNibbles(q, qs);
        uint high = 0;
        for (int j = 0; j < QK; j++) high |= (uint)((int.CreateTruncating(q[j]) & 0x10) >> 4) << j;
        BinaryPrimitives.WriteUInt32LittleEndian(qh, high);
    }

    /// <summary>Unpacks 32 five-bit codes.</summary>
    public static void UnpackFiveBit(ReadOnlySpan<byte> qh, ReadOnlySpan<byte> qs, Span<byte> codes)
    {
        uint high = BinaryPrimitives.ReadUInt32LittleEndian(qh);
        UnpackNibbles(qs, codes);
        for (int j = 0; j < QK; j++) codes[j] |= (byte)(((high >> j) & 1) << 4);
    }

    /// <summary>
    /// Q4_0's and Q5_0's fit for one block: d = max/−half (max the signed value of largest magnitude),
    /// q = min(2·half − 1, trunc(x/d + half + 0.5)). Returns d.
    /// </summary>
    public static float SignedMaxCodes(ReadOnlySpan<float> xb, int half, Span<int> q)
    {
        float max = SignedMaxMagnitude(xb, out _);
        float d = max / -half;
        float id = d != 0 ? 1.0f / d : 0.0f;
        float offset = half + 0.5f;
        for (int j = 0; j < QK; j++) q[j] = Math.Min(2 * half - 1, (int)(sbyte)(int)(xb[j] * id + offset));
        return d;
    }

    /// <summary>
    /// Q4_1's and Q5_1's fit for one block: d = (max − min)/(levels − 1), m = min, q = trunc((x − min)/d + 0.5)
    /// (clamped to 15 for four bits). Returns (d, min).
    /// </summary>
    public static (float D, float Min) MinMaxCodes(ReadOnlySpan<float> xb, int levels, Span<int> q)
    {
        var (min, max) = MinMax(xb);
        float d = (max - min) / (levels - 1);
        float id = d != 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK; j++)
            q[j] = levels == 16 ? Math.Min(15, (int)(sbyte)(int)((xb[j] - min) * id + 0.5f)) : (byte)(int)((xb[j] - min) * id + 0.5f);
        return (d, min);
    }

    /// <summary>
    /// The σ² of the weighted legacy fits (quantize_row_q4_0_impl and its siblings): the mean x² of the whole row,
    /// summed in order as float.
    /// </summary>
    public static float RowSigma2(ReadOnlySpan<float> x)
    {
        float sumX2 = 0;
        for (int j = 0; j < x.Length; j++) sumX2 += x[j] * x[j];
        return sumX2 / x.Length;
    }

    /// <summary>Each weight's importance in the weighted fits: qw·sqrt(σ² + x²).</summary>
    private static void Weights(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, float sigma2, Span<float> weight)
    {
        for (int j = 0; j < QK; j++) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
    }

    /// <summary>
    /// Q4_0's and Q5_0's weighted fit for one block (quantize_row_q4_0_impl / q5_0_impl): make_qx_quants with
    /// <paramref name="half"/> levels each side, weighted by qw·sqrt(σ² + x²). Codes 0..2·half − 1 into
    /// <paramref name="q"/>; returns d.
    /// </summary>
    public static float WeightedSymmetricCodes(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, float sigma2, int half, Span<int> q)
    {
        Span<float> weight = stackalloc float[QK];
        Span<sbyte> L = stackalloc sbyte[QK];
        Weights(xb, qw, sigma2, weight);
        float d = KQuantFits.MakeQxQuants(QK, half, xb, L, weight);
        for (int j = 0; j < QK; j++) q[j] = L[j];
        return d;
    }

    /// <summary>
    /// Q4_1's and Q5_1's weighted fit for one block (quantize_row_q4_1_impl / q5_1_impl): make_qkx3_quants with codes
    /// 0..<paramref name="nmax"/>, weighted by qw·sqrt(σ² + x²). Returns (d, m) as stored: m = −the_min.
    /// </summary>
    public static (float D, float M) WeightedMinMaxCodes(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, float sigma2, int nmax, Span<int> q)
    {
        Span<float> weight = stackalloc float[QK];
        Span<byte> L = stackalloc byte[QK], laux = stackalloc byte[QK];
        Weights(xb, qw, sigma2, weight);
        float d = KQuantFits.MakeQkx3Quants(QK, nmax, xb, weight, L, out float min, laux, -0.9f, 0.05f, 36, false);
        for (int j = 0; j < QK; j++) q[j] = L[j];
        return (d, -min);
    }
}
