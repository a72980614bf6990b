using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.Ggml.KQuantFits;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q5_K: Q4_K's layout plus a fifth bit per weight; 5.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ5_K
{
    public Half D;
    public Half DMin;
    public Bytes12 Scales; // 8 scales and 8 mins in 6 bits (KQuantFits.ScaleMinK4)
    public Bytes32 Qh;     // fifth bits: bits 2j and 2j+1 of byte l are weights 64j + l's and 64j + 32 + l's
    public Bytes128 Qs;    // low nibbles, laid out as Q4_K's
}

/// <summary>Q5_K as quantize_q5_K: quantize_row_q5_K_ref, or quantize_row_q5_K_impl given an importance matrix.</summary>
internal sealed class Q5_K : GgmlBlockFormat<BlockQ5_K, Q5_K.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q5_K;
    public override uint? FileType => 16; // LLAMA_FTYPE_MOSTLY_Q5_K_S
    public override int BlockSize => QK_K;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> L = stackalloc byte[QK_K];
        var blocks = MemoryMarshal.Cast<byte, BlockQ5_K>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            var xb = x.Slice(b * QK_K, QK_K);
            (block.D, block.DMin) = importance.IsEmpty
                ? FitScaleMin32(xb, five: true, block.Scales, L)
                : FitScaleMin32(xb, importance.Slice(b * QK_K, QK_K), five: true, block.Scales, L);
            Pack(L, block.Qh, block.Qs);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        ref var b = ref MemoryMarshal.AsRef<BlockQ5_K>(block);
        Pack(codes, b.Qh, b.Qs);
    }

    /// <summary>Codes 0..31: fifth bits into <paramref name="qh"/>, low nibbles into <paramref name="ql"/> (<see cref="BlockQ5_K"/>).</summary>
    private static void Pack(ReadOnlySpan<byte> L, Span<byte> qh, Span<byte> ql)
    {
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

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ5_K>(bytes);
        o.D = (float)b.D; o.DMin = (float)b.DMin;
        ReadOnlySpan<byte> qh = b.Qh, ql = b.Qs;
        var c = o.Codes;
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
            {
                int lo = (ql[32 * j + l] & 15) + (((qh[l] >> (2 * j)) & 1) != 0 ? 16 : 0);
                int hi = (ql[32 * j + l] >> 4) + (((qh[l] >> (2 * j + 1)) & 1) != 0 ? 16 : 0);
                c[64 * j + l] = (byte)lo; c[64 * j + 32 + l] = (byte)hi;
            }
        ScalesMins32(b.Scales, o.Scales16, o.Mins16);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 5; public static int SuperBlock => 256; public static int Offset => 0;
        public static SubScaleLayout Layout => SubScaleLayout.ScaleMin32; public static bool HasMins => true; public static bool HalfScale => true;
    }
}
