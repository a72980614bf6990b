using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.Ggml.KQuantFits;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q2_K: 256 weights in 16 sub-blocks of 16, w = d·sc·q − dmin·m (4-bit sc and m); 2.625 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ2_K
{
    public Bytes16 Scales; // sub-block j: scale in the low nibble, min in the high one
    public Bytes64 Qs;     // 2-bit codes: in each 128-weight half, byte l holds weights l, l+32, l+64, l+96 at bits 0, 2, 4, 6
    public Half D;
    public Half DMin;
}

/// <summary>
/// Q2_K as quantize_q2_K: quantize_row_q2_K_ref (an asymmetric fit per 16 weights by make_qkx2_quants, scales and
/// mins to 4 bits of the largest), or quantize_row_q2_K_impl given an importance matrix (make_qkx3_quants weighted by
/// qw·sqrt(σ² + x²), scales and mins to 4 bits by make_qp_quants weighted by each sub-block's total weight).
/// </summary>
internal sealed class Q2_K : GgmlBlockFormat<BlockQ2_K, Q2_K.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q2_K;
    public override uint? FileType => 10;
    public override int BlockSize => QK_K;
    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> L = stackalloc byte[QK_K];
        Span<byte> laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[QK_K / 16];
        Span<float> scales = stackalloc float[QK_K / 16];
        Span<float> sw = stackalloc float[QK_K / 16];
        Span<byte> ls = stackalloc byte[QK_K / 16], lm = stackalloc byte[QK_K / 16];
        const float q4scale = 15f;
        var blocks = MemoryMarshal.Cast<byte, BlockQ2_K>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            var xb = x.Slice(b * QK_K, QK_K);
            Span<byte> sc = block.Scales;
            if (importance.IsEmpty)
            {
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
                    block.D = (Half)(maxScale / q4scale);
                }
                else
                {
                    sc.Clear();
                    block.D = (Half)0f;
                }
                if (maxMin > 0)
                {
                    float iscale = q4scale / maxMin;
                    for (int j = 0; j < QK_K / 16; j++) sc[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
                    block.DMin = (Half)(maxMin / q4scale);
                }
                else block.DMin = (Half)0f;
            }
            else
            {
                var qwb = importance.Slice(b * QK_K, QK_K);
                float sumx2 = 0;
                for (int j = 0; j < QK_K; j++) sumx2 += xb[j] * xb[j];
                float sigma2 = sumx2 / QK_K;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    for (int l = 0; l < 16; l++) weights[l] = qwb[16 * j + l] * MathF.Sqrt(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                    float sumw = 0;
                    for (int l = 0; l < 16; l++) sumw += weights[l];
                    sw[j] = sumw;
                    scales[j] = MakeQkx3Quants(16, 3, xb.Slice(16 * j, 16), weights, L.Slice(16 * j, 16), out mins[j], laux, -0.9f, 0.05f, 36, false);
                }
                float dm = MakeQpQuants(QK_K / 16, 15, scales, ls, sw);
                float mm = MakeQpQuants(QK_K / 16, 15, mins, lm, sw);
                block.D = (Half)dm;
                block.DMin = (Half)mm;
                for (int j = 0; j < QK_K / 16; j++) sc[j] = (byte)(ls[j] | (lm[j] << 4));
            }
            float dAll = (float)block.D, mAll = (float)block.DMin;
            for (int j = 0; j < QK_K / 16; j++)
            {
                float d = dAll * (sc[j] & 0xF);
                if (d == 0) continue;
                float dmj = mAll * (sc[j] >> 4);
                for (int i = 0; i < 16; i++)
                {
                    int l = NearestInt((xb[16 * j + i] + dmj) / d);
                    L[16 * j + i] = (byte)Math.Max(0, Math.Min(3, l));
                }
            }
            Pack(L, block.Qs);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes) => Pack(codes, MemoryMarshal.AsRef<BlockQ2_K>(block).Qs);

    /// <summary>Codes 0..3 into the crumb layout of <see cref="BlockQ2_K.Qs"/> (also Q3_K's low two bits).</summary>
    internal static void Pack(ReadOnlySpan<byte> L, Span<byte> qs)
    {
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)((L[j + l] & 3) | ((L[j + l + 32] & 3) << 2) | ((L[j + l + 64] & 3) << 4) | ((L[j + l + 96] & 3) << 6));
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ2_K>(bytes);
        o.D = (float)b.D; o.DMin = (float)b.DMin;
        ReadOnlySpan<byte> qs = b.Qs, sc = b.Scales;
        var c = o.Codes;
        int e = 0;
        for (int n = 0; n < QK_K; n += 128)
        {
            var q = qs.Slice(n / 4, 32);
            for (int shift = 0; shift < 8; shift += 2)
                for (int l = 0; l < 32; l++) c[e++] = (byte)((q[l] >> shift) & 3);
        }
        for (int h = 0; h < 16; h++) { o.Scales16[h] = sc[h] & 15; o.Mins16[h] = sc[h] >> 4; }
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 2; public static int SuperBlock => 256; public static int Offset => 0;
        public static SubScaleLayout Layout => SubScaleLayout.PackedScaleMin16; public static bool HasMins => true; public static bool HalfScale => true;
    }
}
