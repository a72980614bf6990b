using System.Buffers.Binary;
using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>Every minifloat against ml_dtypes' own conversions (../shared/fixtures/formats).</summary>
public class MinifloatTests
{
    public static TheoryData<string> Types => new()
    {
        "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e3m4", "float8_e4m3b11fnuz",
        "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu", "bfloat16", "float16",
    };

    private static uint[] Codes(StoredTensor t) => t.Type switch
    {
        TensorType.U16 => Enumerable.Range(0, (int)t.ElementCount).Select(i => (uint)BinaryPrimitives.ReadUInt16LittleEndian(t.Bytes[(2 * i)..])).ToArray(),
        _ => t.Bytes.ToArray().Select(b => (uint)b).ToArray(),
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void Encoding_is_bit_exact_for_every_input(string type)
    {
        var format = Minifloat.Parse(type);
        using var st = SafetensorsFile.Open(Shared.Fixture("formats", type + ".safetensors"));
        var input = st.Find("input")!.ToFloat32();
        var encoded = Codes(st.Find("encoded")!);
        int bad = 0;
        var first = new List<string>();
        for (int i = 0; i < input.Length; i++)
        {
            uint got = format.Encode(input[i]);
            if (got != encoded[i])
            {
                bad++;
                if (first.Count < 8) first.Add($"{input[i]:R} (0x{BitConverter.SingleToUInt32Bits(input[i]):X8}) → 0x{got:X} want 0x{encoded[i]:X}");
            }
        }
        Assert.True(bad == 0, $"{type}: {bad} of {input.Length} differ: " + string.Join("; ", first));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Decoding_is_bit_exact_for_every_code(string type)
    {
        var format = Minifloat.Parse(type);
        using var st = SafetensorsFile.Open(Shared.Fixture("formats", type + ".safetensors"));
        var encoded = Codes(st.Find("encoded")!);
        var decoded = st.Find("decoded")!.ToFloat32();
        for (int i = 0; i < encoded.Length; i++)
        {
            float got = format.Decode(encoded[i]);
            if (float.IsNaN(decoded[i])) Assert.True(float.IsNaN(got), $"code 0x{encoded[i]:X}");
            else Assert.Equal(BitConverter.SingleToUInt32Bits(decoded[i]), BitConverter.SingleToUInt32Bits(got));
        }
        if (st.Find("decode_table") is { ElementCount: > 0 } table)
        {
            var values = table.ToFloat32();
            Assert.Equal(values.Length, format.DecodeTable.Length);
            for (int c = 0; c < values.Length; c++)
                if (float.IsNaN(values[c])) Assert.True(float.IsNaN(format.Decode((uint)c)));
                else Assert.Equal(BitConverter.SingleToUInt32Bits(values[c]), BitConverter.SingleToUInt32Bits(format.Decode((uint)c)));
        }
    }

    [Theory]
    [InlineData("e4m3fn", 1000f, 448f)]
    [InlineData("e5m2", 1e9f, 57344f)]
    [InlineData("e4m3fnuz", -1e9f, -240f)]
    [InlineData("e2m1fn", 7f, 6f)]
    public void Saturating_mode_clamps_to_the_largest_finite(string type, float x, float expected) =>
        Assert.Equal(expected, Minifloat.Parse(type).Quantize(x, saturate: true));

    [Fact]
    public void Every_exponent_and_mantissa_width_round_trips_its_own_values()
    {
        for (int e = 2; e <= 8; e++)
            for (int m = 0; m <= 10; m++)
            {
                if (1 + e + m > 16) continue;
                foreach (var variant in new[] { MinifloatVariant.Ieee, MinifloatVariant.Fnuz, 1 + e + m >= 8 ? MinifloatVariant.FiniteWithNan : MinifloatVariant.FiniteNoNan })
                {
                    var f = new Minifloat(e, m, variant);
                    for (uint c = 0; c < 1u << f.Bits; c++)
                    {
                        float v = f.Decode(c);
                        if (!float.IsFinite(v)) continue;
                        float back = f.Decode(f.Encode(v));
                        Assert.Equal(v, back);
                    }
                }
            }
    }

    [Theory]
    [InlineData("e4m3", "e4m3fn")]
    [InlineData("fp8_e5m2", "e5m2")]
    [InlineData("e3m2", "e3m2fn")]
    [InlineData("E4M3B11FNUZ", "e4m3b11fnuz")]
    [InlineData("bf16", "bf16")]
    public void Names_parse_to_canonical_formats(string spec, string canonical) => Assert.Equal(canonical, Minifloat.Parse(spec).Name);

    [Theory]
    [InlineData("e9m2")]
    [InlineData("e4m11")]
    [InlineData("e1m3")]
    [InlineData("float7")]
    public void Bad_names_are_refused_with_the_valid_forms(string spec)
    {
        var e = Assert.Throws<AnyBitException>(() => Minifloat.Parse(spec));
        Assert.Contains(spec, e.Message);
    }
}
