using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_q8_0: 32 weights, w = d·q with q an int8; 8.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockQ8_0
{
    public Half D;
    public Bytes32 Qs; // int8 codes
}

/// <summary>Q8_0: d = amax/127, q = roundf(x/d). Codes enter the kernels as q + 128 (unsigned) with offset −128.</summary>
internal sealed class Q8_0 : GgmlBlockFormat<BlockQ8_0, Q8_0.Kernel>, IFixedScaleRounding
{
    public override TensorType Type => TensorType.Q8_0;
    public override uint? FileType => 7;
    public override int BlockSize => LegacyBlocks.QK;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        var blocks = MemoryMarshal.Cast<byte, BlockQ8_0>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            float amax = 0;
            foreach (float v in xb) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            blocks[b].D = (Half)d;
            Span<byte> qs = blocks[b].Qs;
            for (int j = 0; j < LegacyBlocks.QK; j++) qs[j] = (byte)(sbyte)RoundAway(xb[j] * id);
        }
    }

    /// <summary>Code c is the int8 c − 128 (<see cref="DecodeBlock"/>).</summary>
    public void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes)
    {
        Span<byte> qs = MemoryMarshal.AsRef<BlockQ8_0>(block).Qs;
        for (int i = 0; i < LegacyBlocks.QK; i++) qs[i] = (byte)(sbyte)(codes[i] - 128);
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockQ8_0>(bytes);
        o.D = (float)b.D;
        ReadOnlySpan<byte> qs = b.Qs;
        for (int i = 0; i < LegacyBlocks.QK; i++) o.Codes[i] = (byte)((sbyte)qs[i] + 128);
    }

    internal struct Kernel : IKindTraits
    {
        public static int Bits => 8; public static int SuperBlock => 32; public static int Offset => -128;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
    }
}
