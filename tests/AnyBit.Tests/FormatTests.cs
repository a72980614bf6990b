using AnyBit.Formats;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>AnyBit's own formats against straightforward independent implementations written here.</summary>
public class FormatTests
{
    private static float[] Gaussian(int n, int seed, float scale = 0.05f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble())) * scale).ToArray();
    }

    private static float[] RoundTrip(TensorFormat f, float[] x, int rowLength)
    {
        f = f.Bind(rowLength);
        var bytes = new byte[f.ByteSize(x.Length)];
        f.Quantize(x, rowLength, bytes);
        var y = new float[x.Length];
        f.Dequantize(bytes, y);
        return y;
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(5)] [InlineData(7)] [InlineData(8)] [InlineData(12)] [InlineData(16)]
    public void Bit_packing_round_trips_any_width(int bits)
    {
        var rng = new Random(bits);
        var codes = Enumerable.Range(0, 77).Select(_ => rng.Next(1 << bits)).ToArray();
        var packed = new byte[BitPacking.PackedBytes(codes.Length, bits)];
        BitPacking.Pack(codes, bits, packed);
        var back = new int[codes.Length];
        BitPacking.Unpack(packed, bits, back);
        Assert.Equal(codes, back);
    }

    [Fact]
    public void Bit_packing_is_lsb_first_little_endian()
    {
        var packed = new byte[3];
        BitPacking.Pack([1, 2, 3, 4, 5, 6, 7, 0], 3, packed);
        // bits: 001 010 011 100 101 110 111 000 written from bit 0 upward.
        uint stream = 0;
        int[] codes = [1, 2, 3, 4, 5, 6, 7, 0];
        for (int i = 0; i < 8; i++) stream |= (uint)codes[i] << (3 * i);
        Assert.Equal(new[] { (byte)stream, (byte)(stream >> 8), (byte)(stream >> 16) }, packed);
    }

    /// <summary>Textbook group quantization, written independently: the stored format must decode to exactly this.</summary>
    [Theory]
    [InlineData(4, 32, false)]
    [InlineData(3, 64, true)]
    [InlineData(2, 128, false)]
    [InlineData(8, 32, true)]
    [InlineData(6, 16, false)]
    public void Int_groups_match_a_textbook_quantizer(int bits, int group, bool sym)
    {
        var x = Gaussian(512 * 4, bits * 100 + group);
        var got = RoundTrip(new IntFormat(bits, group, sym), x, 512);
        for (int g = 0; g < x.Length / group; g++)
        {
            var v = x.AsSpan(g * group, group);
            float min = float.MaxValue, max = float.MinValue, amax = 0;
            foreach (float a in v) { min = Math.Min(min, a); max = Math.Max(max, a); amax = Math.Max(amax, Math.Abs(a)); }
            for (int i = 0; i < group; i++)
            {
                float expected;
                if (sym)
                {
                    int qmax = (1 << (bits - 1)) - 1;
                    float s = (float)(Half)(amax / qmax);
                    int q = Math.Clamp((int)Math.Round(v[i] / s, MidpointRounding.ToEven), -qmax - 1, qmax);
                    expected = q * s;
                }
                else
                {
                    int qmax = (1 << bits) - 1;
                    float s = (float)(Half)((max - min) / qmax);
                    int z = Math.Clamp((int)Math.Round(-min / s, MidpointRounding.ToEven), 0, qmax);
                    int q = Math.Clamp((int)Math.Round(v[i] / s, MidpointRounding.ToEven) + z, 0, qmax);
                    expected = (q - z) * s;
                }
                Assert.Equal(expected, got[g * group + i], 1e-6f);
            }
        }
    }

    [Fact]
    public void Int_error_shrinks_with_bits_and_smaller_groups()
    {
        var x = Gaussian(1024 * 8, 5);
        double Err(string spec)
        {
            var y = RoundTrip(FormatRegistry.Parse(spec), x, 1024);
            return x.Zip(y).Sum(p => (p.First - p.Second) * (p.First - p.Second));
        }
        Assert.True(Err("int2:g64") > Err("int3:g64"));
        Assert.True(Err("int3:g64") > Err("int4:g64"));
        Assert.True(Err("int4:g64") > Err("int8:g64"));
        Assert.True(Err("int4:g256") > Err("int4:g32"));
        Assert.True(Err("int4:channel") > Err("int4:g32"));
    }

    [Fact]
    public void Nf4_picks_the_nearest_code_and_packs_the_first_element_high()
    {
        var f = new LookupTableFormat("nf4", 16);
        // Each code value times the absmax must come back exactly.
        var x = LookupTableFormat.Nf4.Select(v => v * 0.5f).ToArray();
        var bytes = new byte[f.BytesPerBlock];
        f.QuantizeRow(x, bytes);
        Assert.Equal(0.5f, BitConverter.ToSingle(bytes, 0));
        Assert.Equal((byte)((0 << 4) | 1), bytes[4]); // codes 0 and 1, first in the high nibble
        var y = new float[16];
        f.Dequantize(bytes, y);
        Assert.Equal(x, y);
        // A value exactly between codes 7 (0.0) and 8 (0.0796) goes to the lower code.
        float mid = (0f + LookupTableFormat.Nf4[8]) / 2;
        var x2 = new float[16];
        x2[0] = 1f;
        x2[1] = mid;
        f.QuantizeRow(x2, bytes);
        Assert.Equal(7, bytes[4] & 0xF);
    }

    [Fact]
    public void Codebooks_recover_clustered_values_and_beat_uniform_grids()
    {
        var rng = new Random(3);
        float[] centers = [-0.3f, -0.05f, 0.1f, 0.5f];
        var x = Enumerable.Range(0, 1024).Select(i => centers[rng.Next(4)] + (float)(rng.NextDouble() - 0.5) * 1e-3f).ToArray();
        var y = RoundTrip(new CodebookFormat(2, 128), x, 1024);
        Assert.True(x.Zip(y).Max(p => Math.Abs(p.First - p.Second)) < 2e-3);
        var g = Gaussian(4096, 9);
        double Err(TensorFormat f) => g.Zip(RoundTrip(f, g, 1024)).Sum(p => (p.First - p.Second) * (p.First - p.Second));
        Assert.True(Err(new CodebookFormat(3, 128)) < Err(new IntFormat(3, 128, symmetric: false)));
    }

    [Fact]
    public void Mx_storage_decodes_to_the_microxcaling_fake_quantization()
    {
        string file = Shared.Fixture("mx", "mx_block32_rows.safetensors");
        var input = Shared.ReadF32(file, "input");
        foreach (var (spec, key) in new[] { ("mxfp8_e4m3", "fp8_e4m3.even"), ("mxfp6_e2m3:away", "fp6_e2m3.nearest"), ("mxfp4_e2m1", "fp4_e2m1.even"), ("mxint8", "int8.even") })
        {
            var expected = Shared.ReadF32(file, key);
            var got = RoundTrip(FormatRegistry.Parse(spec), input, 256);
            for (int i = 0; i < got.Length; i++)
                if (float.IsNaN(expected[i])) Assert.True(float.IsNaN(got[i]));
                else Assert.Equal(expected[i], got[i]);
        }
    }

    [Fact]
    public void Nvfp4_values_are_e2m1_times_an_e4m3_scale()
    {
        var x = Gaussian(256, 11);
        var y = RoundTrip(new NvFp4Format(), x, 256);
        var e2m1 = Minifloat.Parse("e2m1fn");
        var e4m3 = Minifloat.Parse("e4m3fn");
        for (int b = 0; b < 16; b++)
        {
            float amax = x.Skip(16 * b).Take(16).Max(Math.Abs);
            float s = e4m3.Quantize(amax / 6f, saturate: true);
            for (int i = 0; i < 16; i++)
                Assert.Equal(e2m1.Quantize(x[16 * b + i] / s, saturate: true) * s, y[16 * b + i]);
        }
    }

    [Theory]
    [InlineData("int9:g32")]
    [InlineData("int4:g32:sym:asym")]
    [InlineData("nf4:g63")]
    [InlineData("e4m3:g32:bogus")]
    [InlineData("cb5:g64")]
    [InlineData("mxfp7")]
    [InlineData("")]
    public void Bad_specs_are_refused_with_the_valid_forms(string spec)
    {
        var e = Assert.Throws<AnyBitException>(() => FormatRegistry.Parse(spec));
        Assert.Contains("Valid forms", e.Message);
    }

    [Theory]
    [InlineData("q4_k", 256, 144)]
    [InlineData("int3:g64", 64, 27)]
    [InlineData("int4:g128:sym", 128, 66)]
    [InlineData("nf4:g64", 64, 36)]
    [InlineData("mxfp6_e3m2", 32, 25)]
    [InlineData("e3m2fn:g32", 32, 26)]
    [InlineData("nvfp4", 16, 9)]
    [InlineData("cb4:g128", 128, 96)]
    public void Registry_entries_state_their_geometry(string spec, int block, int bytes)
    {
        var f = FormatRegistry.Parse(spec);
        Assert.Equal(block, f.BlockSize);
        Assert.Equal(bytes, f.BytesPerBlock);
        Assert.Equal(8.0 * bytes / block, f.BitsPerWeight);
    }
}
