using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_tq2_0: 256 trits, w = (t − 1)·d; 2.0625 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockTQ2_0
{
    public Bytes64 Qs; // in each 32-byte half, byte m holds weight m + 32n at bits 2n
    public Half D;
}

/// <summary>
/// TQ2_0 as quantize_row_tq2_0_ref: d = absmax of the block, trit t = lroundf(x/d) + 1 ∈ {0, 1, 2}. Its 2-bit
/// codes are the ternary kernels' layout (<see cref="Kernel"/>), which TQ1_0 is unpacked into as well.
/// </summary>
internal sealed class TQ2_0 : GgmlBlockFormat<BlockTQ2_0, TQ2_0.Kernel>
{
    public override TensorType Type => TensorType.TQ2_0;
    public override uint? FileType => 37;
    public override int BlockSize => 256;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockTQ2_0>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * 256, 256);
            blocks[b].D = (Half)Trits.BlockScale(xb, out float id);
            Span<byte> qs = blocks[b].Qs;
            for (int half = 0; half < 2; half++)
                for (int m = 0; m < 32; m++)
                {
                    int q = 0;
                    for (int n = 0; n < 4; n++) q |= ((RoundAway(xb[half * 128 + m + n * 32] * id) + 1) & 3) << (2 * n);
                    qs[half * 32 + m] = (byte)q;
                }
        }
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockTQ2_0>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qs = b.Qs;
        var c = o.Codes;
        for (int half = 0; half < 2; half++)
            for (int n = 0; n < 4; n++)
                for (int m = 0; m < 32; m++) c[half * 128 + n * 32 + m] = (byte)((qs[half * 32 + m] >> (2 * n)) & 3);
    }

    /// <summary>Ternary codes: 2-bit trits 0..2 standing for −1..1 (offset −1), one f16 scale per 256.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 2; public static int SuperBlock => 256; public static int Offset => -1;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
        public static bool Ternary => true;
    }
}

/// <summary>What ggml's two ternary types share: the block scale and the base-3 digits of TQ1_0's bytes.</summary>
internal static class Trits
{
    private static readonly byte[] Pow3 = [1, 3, 9, 27, 81, 243];

    /// <summary>d = absmax of the block; <paramref name="id"/> = 1/d (0 for an all-zero block).</summary>
    public static float BlockScale(ReadOnlySpan<float> x, out float id)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        id = amax != 0 ? 1.0f / amax : 0.0f;
        return amax;
    }

    /// <summary>Trit n of a TQ1_0 byte: ((u8)(b·3^n)·3) >> 8.</summary>
    public static int Trit(byte b, int n) => ((byte)(b * Pow3[n]) * 3) >> 8;
}
