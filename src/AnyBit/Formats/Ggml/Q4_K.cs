using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.Ggml.KQuantFits;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q4_K: 256 weights in 8 sub-blocks of 32, w = d·sc·q − dmin·m (6-bit sc and m); 4.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ4_K
{
    public Half D;
    public Half DMin;
    public Bytes12 Scales; // 8 scales and 8 mins in 6 bits (KQuantFits.ScaleMinK4)
    public Bytes128 Qs;    // per 64 weights, 32 bytes: weight l in the low nibble of byte l, weight 32 + l in its high one
}

/// <summary>Q4_K as quantize_q4_K: quantize_row_q4_K_ref, or quantize_row_q4_K_impl given an importance matrix.</summary>
internal sealed class Q4_K : GgmlBlockFormat<BlockQ4_K, Q4_K.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q4_K;
    public override uint? FileType => 14; // LLAMA_FTYPE_MOSTLY_Q4_K_S
    public override int BlockSize => QK_K;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> L = stackalloc byte[QK_K];
        var blocks = MemoryMarshal.Cast<byte, BlockQ4_K>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            ref var block = ref blocks[b];
            var xb = x.Slice(b * QK_K, QK_K);
            (block.D, block.DMin) = importance.IsEmpty
                ? FitScaleMin32(xb, five: false, block.Scales, L)
                : FitScaleMin32(xb, importance.Slice(b * QK_K, QK_K), five: false, block.Scales, L);
            Pack(L, block.Qs);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes) => Pack(codes, MemoryMarshal.AsRef<BlockQ4_K>(block).Qs);

    /// <summary>Codes 0..15 into the nibble layout of <see cref="BlockQ4_K.Qs"/>.</summary>
    private static void Pack(ReadOnlySpan<byte> L, Span<byte> q)
    {
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++) q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ4_K>(bytes);
        o.D = (float)b.D; o.DMin = (float)b.DMin;
        ReadOnlySpan<byte> ql = b.Qs;
        var c = o.Codes;
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
            {
                c[64 * j + l] = (byte)(ql[32 * j + l] & 15);
                c[64 * j + 32 + l] = (byte)(ql[32 * j + l] >> 4);
            }
        ScalesMins32(b.Scales, o.Scales16, o.Mins16);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 256; public static int Offset => 0;
        public static SubScaleLayout Layout => SubScaleLayout.ScaleMin32; public static bool HasMins => true; public static bool HalfScale => true;
    }
}
