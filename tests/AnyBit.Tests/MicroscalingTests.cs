using AnyBit.Formats;

namespace AnyBit.Tests;

/// <summary>MX block quantization against Microsoft's microxcaling (../shared/fixtures/mx).</summary>
public class MicroscalingTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var e in new[] { "int8", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1" })
            foreach (var r in new[] { "nearest", "even" }) data.Add(e, r);
        return data;
    }

    private static MxElement Element(string name) => name switch
    {
        "int8" => MxElement.Int8,
        "fp8_e4m3" => MxElement.Fp8E4M3,
        "fp8_e5m2" => MxElement.Fp8E5M2,
        "fp6_e3m2" => MxElement.Fp6E3M2,
        "fp6_e2m3" => MxElement.Fp6E2M3,
        _ => MxElement.Fp4E2M1,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fake_quantization_is_bit_exact(string element, string rounding)
    {
        string file = Shared.Fixture("mx", "mx_block32_rows.safetensors");
        var input = Shared.ReadF32(file, "input");
        var expected = Shared.ReadF32(file, $"{element}.{rounding}");
        var got = new float[input.Length];
        Microscaling.QuantizeDequantize(input, got, Element(element), rounding == "even" ? MxRounding.NearestEven : MxRounding.NearestAway);
        int bad = 0;
        var first = new List<string>();
        for (int i = 0; i < input.Length; i++)
        {
            bool same = float.IsNaN(expected[i]) ? float.IsNaN(got[i]) : BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(got[i]);
            if (!same)
            {
                bad++;
                if (first.Count < 6) first.Add($"[{i / 256},{i % 256}] {input[i]:R} → {got[i]:R} want {expected[i]:R}");
            }
        }
        Assert.True(bad == 0, $"{bad} of {input.Length} differ: " + string.Join("; ", first));
    }
}
