namespace AnyBit.Formats;

/// <summary>How a block format rounds element values to their grid.</summary>
public enum MxRounding
{
    /// <summary>Round half away from zero (microxcaling's default "nearest").</summary>
    NearestAway,
    /// <summary>Round half to even.</summary>
    NearestEven,
}

/// <summary>An OCP microscaling element type: its exponent and mantissa widths as microxcaling parameterises them.</summary>
/// <param name="Name">mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8 (plain "mxfp4" is ggml's MXFP4)</param>
/// <param name="ExponentBits">element exponent bits (0 for the integer element)</param>
/// <param name="MantissaBits">microxcaling's "mbits": stored mantissa bits + sign + implicit bit</param>
/// <param name="Emax">largest element exponent; the shared scale is floor(log2 amax) − Emax</param>
/// <param name="MaxNormal">largest element magnitude; elements saturate there</param>
/// <param name="StoredBits">bits an element takes when packed</param>
public sealed record MxElement(string Name, int ExponentBits, int MantissaBits, int Emax, float MaxNormal, int StoredBits)
{
    public static readonly MxElement Fp8E4M3 = new("mxfp8_e4m3", 4, 5, 8, 448f, 8);
    public static readonly MxElement Fp8E5M2 = new("mxfp8_e5m2", 5, 4, 15, 57344f, 8);
    public static readonly MxElement Fp6E3M2 = new("mxfp6_e3m2", 3, 4, 4, 28f, 6);
    public static readonly MxElement Fp6E2M3 = new("mxfp6_e2m3", 2, 5, 2, 7.5f, 6);
    public static readonly MxElement Fp4E2M1 = new("mxfp4_e2m1", 2, 3, 2, 6f, 4);
    public static readonly MxElement Int8 = new("mxint8", 0, 8, 0, 127f / 64f, 8);

    public static IReadOnlyList<MxElement> All { get; } = [Fp8E4M3, Fp8E5M2, Fp6E3M2, Fp6E2M3, Fp4E2M1, Int8];
}

/// <summary>
/// OCP Microscaling (MX) block quantization, following Microsoft's microxcaling reference step by step in float32:
/// per block of k values, shared exponent e = floor(log2 max|x|) − emax_elem (clamped to [−127, 127], NaN above);
/// each x/2^e is rounded to the element grid with subnormals and saturation at the largest normal; the result is
/// scaled back. The E8M0 scale code is e + 127.
/// </summary>
public static class Microscaling
{
    private const float Fp32MinNormal = 1.17549435e-38f;

    /// <summary>The shared exponent of one block, or null (NaN scale) when it exceeds E8M0's range.</summary>
    public static int? SharedExponent(ReadOnlySpan<float> block, MxElement element)
    {
        float max = 0;
        foreach (float v in block) max = MathF.Max(max, MathF.Abs(v));
        // microxcaling: floor(log2(max + FP32_MIN_NORMAL·(max == 0))), in float32.
        float e = MathF.Floor(MathF.Log2(max == 0 ? Fp32MinNormal : max)) - element.Emax;
        if (float.IsNaN(e) || e > 127) return null;
        return (int)MathF.Max(e, -127);
    }

    /// <summary>Fake-quantizes <paramref name="values"/> in blocks of <paramref name="blockSize"/> (the last block may be short).</summary>
    public static void QuantizeDequantize(ReadOnlySpan<float> values, Span<float> output, MxElement element, MxRounding rounding, int blockSize = 32)
    {
        for (int start = 0; start < values.Length; start += blockSize)
        {
            int n = Math.Min(blockSize, values.Length - start);
            var block = values.Slice(start, n);
            var dst = output.Slice(start, n);
            int? shared = SharedExponent(block, element);
            if (shared is null)
            {
                dst.Fill(float.NaN);
                continue;
            }
            float scale = MathF.Pow(2, shared.Value);
            for (int i = 0; i < n; i++) dst[i] = QuantizeElement(block[i] / scale, element, rounding) * scale;
        }
    }

    /// <summary>Rounds one scaled value to the element grid (microxcaling's _quantize_elemwise_core).</summary>
    public static float QuantizeElement(float a, MxElement element, MxRounding rounding)
    {
        if (float.IsNaN(a)) return a;
        if (float.IsInfinity(a)) return a;
        int shift = element.MantissaBits - 2;
        float result;
        if (element.ExponentBits == 0)
        {
            float scaled = a * MathF.Pow(2, shift);
            result = Round(scaled, rounding) / MathF.Pow(2, shift);
        }
        else
        {
            int minExp = -(1 << (element.ExponentBits - 1)) + 2;
            float privateExp = MathF.Floor(MathF.Log2(MathF.Abs(a) + (a == 0 ? 1f : 0f)));
            privateExp = MathF.Max(privateExp, minExp);
            float p = MathF.Pow(2, privateExp);
            float scaled = a / p * MathF.Pow(2, shift);
            result = Round(scaled, rounding) / MathF.Pow(2, shift) * p;
        }
        return Math.Clamp(result, -element.MaxNormal, element.MaxNormal);
    }

    private static float Round(float x, MxRounding rounding)
    {
        float ax = MathF.Abs(x);
        float r = MathF.Floor(ax + 0.5f);
        if (rounding == MxRounding.NearestEven && (ax - 0.5f) % 2f == 0f) r -= 1f;
        return MathF.CopySign(r, x);
    }
}
