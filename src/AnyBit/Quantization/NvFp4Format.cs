using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// NVFP4: blocks of 16 E2M1 values sharing an E4M3 scale. Block layout: the scale byte (E4M3FN, scale =
/// amax/6 rounded to nearest even and saturated), then 8 bytes of 4-bit codes, element 2i in the low nibble.
/// Elements are x/scale rounded to the nearest E2M1 value (ties to even), saturating at ±6. 4.5 bits per weight.
/// (NVIDIA's second-level per-tensor fp32 scale is not applied.)
/// </summary>
public sealed class NvFp4Format : TensorFormat
{
    private static readonly Minifloat Scale = Minifloat.Parse("e4m3fn");
    private static readonly Minifloat Element = Minifloat.Parse("e2m1fn");

    public override string Name => "nvfp4";
    public override TensorType? GgmlType => null;
    public override int BlockSize => 16;
    public override int BytesPerBlock => 9;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        for (int b = 0; b < row.Length / 16; b++)
        {
            var x = row.Slice(b * 16, 16);
            var block = dst.Slice(b * 9, 9);
            float amax = 0;
            foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
            byte sc = (byte)Scale.Encode(amax / 6f, saturate: true);
            block[0] = sc;
            float s = Scale.Decode(sc);
            float inv = s != 0 ? 1f / s : 0f;
            for (int i = 0; i < 16; i += 2)
                block[1 + i / 2] = (byte)(Element.Encode(x[i] * inv, saturate: true) | (Element.Encode(x[i + 1] * inv, saturate: true) << 4));
        }
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int b = 0; b < dst.Length / 16; b++)
        {
            var block = src.Slice(b * 9, 9);
            float s = Scale.Decode(block[0]);
            for (int i = 0; i < 16; i += 2)
            {
                dst[b * 16 + i] = Element.Decode((uint)(block[1 + i / 2] & 0xF)) * s;
                dst[b * 16 + i + 1] = Element.Decode((uint)(block[1 + i / 2] >> 4)) * s;
            }
        }
    }

    /// <summary>Runs on the float path (dequantized at load).</summary>
    internal override Kernels.Quantized.PackedKind? Kind => null;

    /// <summary>nvfp4.</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 4;
        public override string Forms => "nvfp4";
        public override IReadOnlyList<string> Examples => ["nvfp4"];
        public override TensorFormat? TryParse(string head, FormatOptions options) => head == "nvfp4" ? new NvFp4Format() : null;
    }
}
