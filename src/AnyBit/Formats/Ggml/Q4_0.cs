using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q4_0: 32 weights, w = d·(q − 8); 4.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ4_0
{
    public Half D;
    public Bytes16 Qs; // 32 nibbles (LegacyBlocks layout)
}

/// <summary>
/// Q4_0: d = max/−8 (signed value of largest magnitude), q = min(15, trunc(x/d + 8.5)) (quantize_row_q4_0_ref); given
/// an importance matrix, quantize_row_q4_0_impl's weighted symmetric fit instead.
/// </summary>
internal sealed class Q4_0 : GgmlBlockFormat<BlockQ4_0, Q4_0.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q4_0;
    public override uint? FileType => 2;
    public override int BlockSize => LegacyBlocks.QK;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<int> q = stackalloc int[LegacyBlocks.QK];
        var blocks = MemoryMarshal.Cast<byte, BlockQ4_0>(y);
        float sigma2 = importance.IsEmpty ? 0 : LegacyBlocks.RowSigma2(x);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            blocks[b].D = (Half)(importance.IsEmpty
                ? LegacyBlocks.SignedMaxCodes(xb, 8, q)
                : LegacyBlocks.WeightedSymmetricCodes(xb, importance.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK), sigma2, 8, q));
            LegacyBlocks.PackNibbles<int>(q, blocks[b].Qs);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes) => LegacyBlocks.PackNibbles(codes, MemoryMarshal.AsRef<BlockQ4_0>(block).Qs);

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ4_0>(bytes);
        o.D = (float)b.D;
        LegacyBlocks.UnpackNibbles(b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -8;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
