using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q5_1: 32 weights, w = d·q + m; 6 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ5_1
{
    public Half D;
    public Half M;
    public Bytes4 Qh;  // fifth bits: bit j of a little-endian u32
    public Bytes16 Qs; // low nibbles (LegacyBlocks layout)
}

/// <summary>
/// Q5_1: d = (max − min)/31, m = min, q = trunc((x − min)/d + 0.5) (quantize_row_q5_1_ref); given an importance
/// matrix, quantize_row_q5_1_impl's weighted scale-and-min fit (make_qkx3_quants) instead.
/// </summary>
internal sealed class Q5_1 : GgmlBlockFormat<BlockQ5_1, Q5_1.Kernel>
{
    public override TensorType Type => TensorType.Q5_1;
    public override uint? FileType => 9;
    public override int BlockSize => LegacyBlocks.QK;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<int> q = stackalloc int[LegacyBlocks.QK];
        var blocks = MemoryMarshal.Cast<byte, BlockQ5_1>(y);
        float sigma2 = importance.IsEmpty ? 0 : LegacyBlocks.RowSigma2(x);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            var (d, min) = importance.IsEmpty
                ? LegacyBlocks.MinMaxCodes(xb, 32, q)
                : LegacyBlocks.WeightedMinMaxCodes(xb, importance.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK), sigma2, 31, q);
            blocks[b].D = (Half)d;
            blocks[b].M = (Half)min;
            LegacyBlocks.PackFiveBit(q, blocks[b].Qh, blocks[b].Qs);
        }
    }

    /// <summary>The min enters as dmin = −m against a min of 1 per value.</summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ5_1>(bytes);
        o.D = (float)b.D;
        o.DMin = -(float)b.M;
        o.Mins16.Fill(1);
        LegacyBlocks.UnpackFiveBit(b.Qh, b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 5; public static int SuperBlock => 32; public static int Offset => 0;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => true; public static bool HalfScale => true;
    }
}
