using AnyBit.Kernels.Attention;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The vectorized KV row decoders give, bit for bit, what each format's reference dequantizer gives: on rows the
/// format's quantizer wrote, and on arbitrary bytes (any scale, infinities and NaNs included).
/// </summary>
public unsafe class KvRowDecoderTests
{
    public static TheoryData<string> Types => new(["f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"]);

    [Theory]
    [MemberData(nameof(Types))]
    public void Decoder_equals_the_reference_dequantizer(string spec)
    {
        var format = FormatRegistry.Parse(spec).Bind(64);
        var decoder = KvRowDecoder.For(format);
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported) { Assert.Null(decoder); return; }
        Assert.NotNull(decoder);
        var rng = new Random(7);
        int values = 64 * 40;
        var bytes = new byte[format.ByteSize(values)];
        // Rows the quantizer wrote, at scales from tiny to large.
        var x = new float[values];
        for (int i = 0; i < values; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, (i / 64) % 8 - 4));
        for (int r = 0; r < 40; r++) format.QuantizeRow(x.AsSpan(r * 64, 64), bytes.AsSpan((int)(r * format.ByteSize(64)), (int)format.ByteSize(64)));
        Check(format, decoder!, bytes, values);
        // Arbitrary bytes: every scale, subnormal, infinite or NaN, and every code.
        rng.NextBytes(bytes);
        Check(format, decoder!, bytes, values);
    }

    private static void Check(TensorFormat format, KvRowDecoder.Decoder decoder, byte[] bytes, int values)
    {
        var expected = new float[values];
        var actual = new float[values];
        format.Dequantize(bytes, expected);
        fixed (byte* b = bytes)
        fixed (float* a = actual)
            decoder(b, a, values);
        for (int i = 0; i < values; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) && !(float.IsNaN(expected[i]) && float.IsNaN(actual[i])))
                Assert.Fail($"{format.Name}: value {i} decodes to {actual[i]:R}, the reference gives {expected[i]:R}");
    }
}

/// <summary>The attention tile's float exp is within a few ulp of exp over the whole range a softmax feeds it.</summary>
public unsafe class FlashAttentionExpTests
{
    [Fact]
    public void Tile_exp_is_within_4_ulp_of_exp()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported) return;
        int n = 1 << 16;
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = -90f * i / (n - 1); // 0 … −90, past the underflow cut at −87
        var y = (float[])x.Clone();
        float sum;
        fixed (float* p = y) sum = FlashAttention.ExpSum(p, 0, n, 0f);
        double expected = 0;
        for (int i = 0; i < n; i++)
        {
            double e = Math.Exp(x[i]);
            expected += e;
            if (x[i] < -87f) { Assert.True(y[i] <= 2e-38f, $"exp({x[i]}) = {y[i]}"); continue; }
            double ulp = Math.Max(MathF.BitIncrement((float)e) - (float)e, float.Epsilon);
            Assert.True(Math.Abs(y[i] - e) <= 4 * ulp, $"exp({x[i]:R}) = {y[i]:R}, expected {e:R}");
        }
        Assert.Equal(expected, sum, expected * 1e-5); // float sums of 65,536 terms
    }
}
