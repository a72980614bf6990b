using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_tq1_0: 256 trits, five per byte in base 3, w = (t − 1)·d; 1.6875 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockTQ1_0
{
    public Bytes48 Qs; // bytes 0-31: weights m + 32n (n < 5); bytes 32-47: weights 160 + m + 16n
    public Bytes4 Qh;  // weights 240 + m + 4n (four trits, the fifth zero)
    public Half D;
}

/// <summary>
/// TQ1_0 as quantize_row_tq1_0_ref: TQ2_0's trits packed as q = Σ t_n·3^(4−n), stored as ⌈q·256/243⌉ so that trit
/// n reads back as ((u8)(b·3^n)·3) >> 8. The kernels unpack it at load into TQ2_0's 2-bit codes (2.06 instead of
/// 1.69 bits per weight in memory, for a decode that is a shift and a mask).
/// </summary>
internal sealed class TQ1_0 : GgmlBlockFormat<BlockTQ1_0, TQ2_0.Kernel>
{
    public override TensorType Type => TensorType.TQ1_0;
    public override uint? FileType => 36;
    public override int BlockSize => 256;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockTQ1_0>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * 256, 256);
            blocks[b].D = (Half)Trits.BlockScale(xb, out float id);
            Span<byte> qs = blocks[b].Qs, qh = blocks[b].Qh;
            for (int m = 0; m < 32; m++) qs[m] = Pack(xb, m, 32, 5, id);
            for (int m = 0; m < 16; m++) qs[32 + m] = Pack(xb, 160 + m, 16, 5, id);
            for (int m = 0; m < 4; m++) qh[m] = Pack(xb, 240 + m, 4, 4, id);
        }
    }

    private static byte Pack(ReadOnlySpan<float> x, int first, int stride, int count, float id)
    {
        int q = 0;
        for (int n = 0; n < count; n++) q = q * 3 + (RoundAway(x[first + n * stride] * id) + 1);
        for (int n = count; n < 5; n++) q *= 3;
        return (byte)((q * 256 + 242) / 243);
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockTQ1_0>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qs = b.Qs, qh = b.Qh;
        var c = o.Codes;
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 32; m++) c[n * 32 + m] = (byte)Trits.Trit(qs[m], n);
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 16; m++) c[160 + n * 16 + m] = (byte)Trits.Trit(qs[32 + m], n);
        for (int n = 0; n < 4; n++)
            for (int m = 0; m < 4; m++) c[240 + n * 4 + m] = (byte)Trits.Trit(qh[m], n);
    }
}
