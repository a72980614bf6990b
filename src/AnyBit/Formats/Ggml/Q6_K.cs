using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.Ggml.KQuantFits;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q6_K: 256 weights in 16 sub-blocks of 16, w = d·sc·(q − 32) (int8 sc); 6.5625 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ6_K
{
    public Bytes128 Ql;    // low 4 bits: per 128 weights, 64 bytes; byte l holds weights l and l + 64, byte l + 32 weights l + 32 and l + 96
    public Bytes64 Qh;     // high 2 bits: per 128 weights, 32 bytes; byte l holds weights l, l + 32, l + 64, l + 96 at bits 0, 2, 4, 6
    public Bytes16 Scales; // int8 sub-block scales
    public Half D;
}

/// <summary>
/// Q6_K as quantize_q6_K: a symmetric fit per 16 weights (make_qx_quants), weighted by x² (quantize_row_q6_K_ref) or
/// by the importance matrix itself (quantize_row_q6_K_impl, which unlike the other K-quants does not fold in σ² + x²),
/// scales to int8.
/// </summary>
internal sealed class Q6_K : GgmlBlockFormat<BlockQ6_K, Q6_K.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q6_K;
    public override uint? FileType => 18;
    public override int BlockSize => QK_K;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[QK_K / 16];
        var blocks = MemoryMarshal.Cast<byte, BlockQ6_K>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            var xb = x.Slice(b * QK_K, QK_K);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < QK_K / 16; ib++)
            {
                float scale = MakeQxQuants(16, 32, xb.Slice(16 * ib, 16), L.Slice(16 * ib, 16),
                    importance.IsEmpty ? default : importance.Slice(b * QK_K + 16 * ib, 16));
                scales[ib] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (Negligible(maxAbsScale))
            {
                block = default;
                continue;
            }
            float iscale = -128f / maxScale;
            block.D = (Half)(1 / iscale);
            Span<byte> sc = block.Scales;
            for (int ib = 0; ib < QK_K / 16; ib++) sc[ib] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
            float dAll = (float)block.D;
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
            Pack(MemoryMarshal.Cast<sbyte, byte>(L), block.Ql, block.Qh);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        ref var b = ref MemoryMarshal.AsRef<BlockQ6_K>(block);
        Pack(codes, b.Ql, b.Qh);
    }

    /// <summary>Codes 0..63: low 4 bits into <paramref name="ql"/>, high 2 into <paramref name="qh"/> (<see cref="BlockQ6_K"/>).</summary>
    private static void Pack(ReadOnlySpan<byte> L, Span<byte> ql, Span<byte> qh)
    {
        for (int j = 0; j < QK_K; j += 128)
        {
            int qlo = j / 2, qho = j / 4;
            for (int l = 0; l < 32; l++)
            {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[qlo + l] = (byte)(q1 | (q3 << 4));
                ql[qlo + l + 32] = (byte)(q2 | (q4 << 4));
                int h1 = L[j + l] >> 4, h2 = L[j + l + 32] >> 4, h3 = L[j + l + 64] >> 4, h4 = L[j + l + 96] >> 4;
                qh[qho + l] = (byte)(h1 | (h2 << 2) | (h3 << 4) | (h4 << 6));
            }
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ6_K>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qlAll = b.Ql, qhAll = b.Qh, sc = b.Scales;
        var c = o.Codes;
        for (int n = 0; n < QK_K; n += 128)
        {
            var ql = qlAll.Slice(n / 2, 64);
            var qh = qhAll.Slice(n / 4, 32);
            for (int l = 0; l < 32; l++)
            {
                c[n + l] = (byte)((ql[l] & 15) | ((qh[l] & 3) << 4));
                c[n + l + 32] = (byte)((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
                c[n + l + 64] = (byte)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                c[n + l + 96] = (byte)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
            }
        }
        for (int h = 0; h < 16; h++) o.Scales16[h] = (sbyte)sc[h];
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
