using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q5_0: 32 weights, w = d·(q − 16); 5.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ5_0
{
    public Half D;
    public Bytes4 Qh;  // fifth bits: bit j of a little-endian u32
    public Bytes16 Qs; // low nibbles (LegacyBlocks layout)
}

/// <summary>
/// Q5_0: d = max/−16, q = min(31, trunc(x/d + 16.5)) (quantize_row_q5_0_ref); given an importance matrix,
/// quantize_row_q5_0_impl's weighted symmetric fit instead.
/// </summary>
internal sealed class Q5_0 : GgmlBlockFormat<BlockQ5_0, Q5_0.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q5_0;
    public override uint? FileType => 8;
    public override int BlockSize => LegacyBlocks.QK;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => QuantizeRow(x, y, default);

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<int> q = stackalloc int[LegacyBlocks.QK];
        var blocks = MemoryMarshal.Cast<byte, BlockQ5_0>(y);
        float sigma2 = importance.IsEmpty ? 0 : LegacyBlocks.RowSigma2(x);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            blocks[b].D = (Half)(importance.IsEmpty
                ? LegacyBlocks.SignedMaxCodes(xb, 16, q)
                : LegacyBlocks.WeightedSymmetricCodes(xb, importance.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK), sigma2, 16, q));
            LegacyBlocks.PackFiveBit<int>(q, blocks[b].Qh, blocks[b].Qs);
        }
    }

    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        ref var b = ref MemoryMarshal.AsRef<BlockQ5_0>(block);
        LegacyBlocks.PackFiveBit(codes, b.Qh, b.Qs);
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ5_0>(bytes);
        o.D = (float)b.D;
        LegacyBlocks.UnpackFiveBit(b.Qh, b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 5; public static int SuperBlock => 32; public static int Offset => -16;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
