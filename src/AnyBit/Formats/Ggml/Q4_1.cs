using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q4_1: 32 weights, w = d·q + m; 5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ4_1
{
    public Half D;
    public Half M;
    public Bytes16 Qs; // 32 nibbles (LegacyBlocks layout)
}

/// <summary>
/// Q4_1: d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)) (quantize_row_q4_1_ref); given an importance
/// matrix, quantize_row_q4_1_impl's weighted scale-and-min fit (make_qkx3_quants) instead.
/// </summary>
internal sealed class Q4_1 : GgmlBlockFormat<BlockQ4_1, Q4_1.Kernel>
{
    public override TensorType Type => TensorType.Q4_1;
    public override uint? FileType => 3;
    public override int BlockSize => LegacyBlocks.QK;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<int> q = stackalloc int[LegacyBlocks.QK];
        var blocks = MemoryMarshal.Cast<byte, BlockQ4_1>(y);
        float sigma2 = importance.IsEmpty ? 0 : LegacyBlocks.RowSigma2(x);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            var (d, min) = importance.IsEmpty
                ? LegacyBlocks.MinMaxCodes(xb, 16, q)
                : LegacyBlocks.WeightedMinMaxCodes(xb, importance.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK), sigma2, 15, q);
            blocks[b].D = (Half)d;
            blocks[b].M = (Half)min;
            LegacyBlocks.PackNibbles(q, blocks[b].Qs);
        }
    }

    /// <summary>The min enters as dmin = −m against a min of 1 per value.</summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ4_1>(bytes);
        o.D = (float)b.D;
        o.DMin = -(float)b.M;
        o.Mins16.Fill(1);
        LegacyBlocks.UnpackNibbles(b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => 0;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => true; public static bool HalfScale => true;
    }
}
