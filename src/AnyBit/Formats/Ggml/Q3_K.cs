using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.Ggml.KQuantFits;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q3_K: 256 weights in 16 sub-blocks of 16, w = d·sc·(q − 4) (signed 6-bit sc); 3.4375 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ3_K
{
    public Bytes32 HMask;  // third bits: bit k of byte l is weight 32k + l's
    public Bytes64 Qs;     // low 2 bits, laid out as Q2_K's
    public Bytes12 Scales; // 16 scales + 32 in 6 bits: low 4 bits in bytes 0-7, high 2 in 8-11 (KQuantFits.Q3Scales)
    public Half D;
}

/// <summary>
/// Q3_K as quantize_q3_K: quantize_row_q3_K_ref (a symmetric fit per 16 weights by make_q3_quants, scales to signed
/// 6 bits of the largest), or quantize_row_q3_K_impl given an importance matrix (make_qx_quants weighted by
/// qw·sqrt(σ² + x²) per 16 weights, then the 16 scales themselves fitted to 6 bits by make_qx_quants weighted by each
/// sub-block's total weight).
/// </summary>
internal sealed class Q3_K : GgmlBlockFormat<BlockQ3_K, Q3_K.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q3_K;
    public override uint? FileType => 11; // LLAMA_FTYPE_MOSTLY_Q3_K_S
    public override int BlockSize => QK_K;
    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[QK_K / 16];
        Span<float> weight = stackalloc float[16];
        Span<float> sw = stackalloc float[QK_K / 16];
        Span<sbyte> ls = stackalloc sbyte[QK_K / 16];
        var blocks = MemoryMarshal.Cast<byte, BlockQ3_K>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            var xb = x.Slice(b * QK_K, QK_K);
            Span<byte> sc = block.Scales;
            sc.Clear();
            if (importance.IsEmpty)
            {
                float maxScale = 0, amax = 0;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    scales[j] = MakeQ3Quants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16));
                    float s = MathF.Abs(scales[j]);
                    if (s > amax) { amax = s; maxScale = scales[j]; }
                }
                if (maxScale != 0)
                {
                    float iscale = -32f / maxScale;
                    for (int j = 0; j < QK_K / 16; j++)
                    {
                        sbyte l8 = (sbyte)NearestInt(iscale * scales[j]);
                        PackScale(sc, j, Math.Max(-32, Math.Min(31, (int)l8)) + 32);
                    }
                    block.D = (Half)(1 / iscale);
                }
                else block.D = (Half)0f;
            }
            else
            {
                var qwb = importance.Slice(b * QK_K, QK_K);
                float sumx2 = 0;
                for (int j = 0; j < QK_K; j++) sumx2 += xb[j] * xb[j];
                float sigma2 = 2 * sumx2 / QK_K;
                for (int j = 0; j < QK_K / 16; j++)
                {
                    for (int l = 0; l < 16; l++) weight[l] = qwb[16 * j + l] * MathF.Sqrt(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                    float sumw = 0;
                    for (int l = 0; l < 16; l++) sumw += weight[l];
                    sw[j] = sumw;
                    scales[j] = MakeQxQuants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16), weight);
                }
                float dBlock = MakeQxQuants(QK_K / 16, 32, scales, ls, sw);
                for (int j = 0; j < QK_K / 16; j++) PackScale(sc, j, ls[j]);
                block.D = (Half)dBlock;
            }
            Requantize(xb, ref block, L);
        }
    }

    /// <summary>Stores sub-block j's biased 6-bit scale l (0..63): low 4 bits in bytes 0–7, high 2 in 8–11.</summary>
    private static void PackScale(Span<byte> sc, int j, int l)
    {
        if (j < 8) sc[j] = (byte)(l & 0xF);
        else sc[j - 8] |= (byte)((l & 0xF) << 4);
        l >>= 4;
        sc[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
    }

    /// <summary>Both paths' last step: every weight re-mapped against its stored sub-block scale, then packed.</summary>
    private static void Requantize(ReadOnlySpan<float> xb, ref BlockQ3_K block, Span<sbyte> L)
    {
        Span<byte> hmask = block.HMask, qs = block.Qs, sc = block.Scales;
        float dAll = (float)block.D;
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
        Pack(MemoryMarshal.Cast<sbyte, byte>(L), hmask, qs);
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        ref var b = ref MemoryMarshal.AsRef<BlockQ3_K>(block);
        Pack(codes, b.HMask, b.Qs);
    }

    /// <summary>Codes 0..7: the third bit into <paramref name="hmask"/> (bit k of byte l is weight 32k + l's), the low two as Q2_K's.</summary>
    private static void Pack(ReadOnlySpan<byte> L, Span<byte> hmask, Span<byte> qs)
    {
        hmask.Clear();
        for (int j = 0; j < QK_K; j++)
            if (L[j] > 3) hmask[j % (QK_K / 8)] |= (byte)(1 << (j / (QK_K / 8)));
        Q2_K.Pack(L, qs);
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ3_K>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> hm = b.HMask, qs = b.Qs;
        Q3Scales(b.Scales, o.Scales16);
        var c = o.Codes;
        int e = 0, m = 1;
        for (int n = 0; n < QK_K; n += 128)
        {
            var q = qs.Slice(n / 4, 32);
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int l = 0; l < 32; l++) c[e++] = (byte)(((q[l] >> shift) & 3) + ((hm[l] & m) != 0 ? 4 : 0));
        }
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 3; public static int SuperBlock => 256; public static int Offset => -4;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
