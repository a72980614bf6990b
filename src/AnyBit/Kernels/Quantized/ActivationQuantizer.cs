using System.Runtime.Intrinsics;

namespace AnyBit.Kernels.Quantized;

/// <summary>int8 codes of a block of activations for a given scale: the SIMD path and its scalar reference.</summary>
public static class ActivationQuantizer
{
    /// <summary>codes[i] = round-half-even(x[i] · (1/scale)), the same float product and rounding in every path.</summary>
    public static void Codes(ReadOnlySpan<float> x, float scale, Span<sbyte> codes)
    {
        float inverse = scale == 0 ? 0 : 1f / scale;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var inv = Vector256.Create(inverse);
            for (; i + 16 <= x.Length; i += 16)
            {
                // |x·inverse| ≤ 127 by construction of the scale, so the narrowing needs no saturation.
                var a = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(x.Slice(i, 8)) * inv));
                var b = Vector256.ConvertToInt32(Vector256.Round(Vector256.Create(x.Slice(i + 8, 8)) * inv));
                var shorts = Vector256.Narrow(a, b);
                var bytes = Vector256.Narrow(shorts, shorts);
                bytes.GetLower().AsSByte().CopyTo(codes.Slice(i, 16));
            }
        }
        else if (Vector128.IsHardwareAccelerated) i = Codes128(x, inverse, codes);
        for (; i < x.Length; i++) codes[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * inverse, MidpointRounding.ToEven), -127f, 127f);
    }

    /// <summary>
    /// The 128-bit path (ARM64, x86 without AVX2) over whole runs of 16, the same product and rounding (ties to even:
    /// ARM64's frintn, x86's roundps); returns the count done. Its own method so that the tests run it on any CPU.
    /// </summary>
    internal static int Codes128(ReadOnlySpan<float> x, float inverse, Span<sbyte> codes)
    {
        var inv = Vector128.Create(inverse);
        int i = 0;
        for (; i + 16 <= x.Length; i += 16)
        {
            var a = Vector128.ConvertToInt32(Vector128.Round(Vector128.Create(x.Slice(i, 4)) * inv));
            var b = Vector128.ConvertToInt32(Vector128.Round(Vector128.Create(x.Slice(i + 4, 4)) * inv));
            var c = Vector128.ConvertToInt32(Vector128.Round(Vector128.Create(x.Slice(i + 8, 4)) * inv));
            var d = Vector128.ConvertToInt32(Vector128.Round(Vector128.Create(x.Slice(i + 12, 4)) * inv));
            Vector128.Narrow(Vector128.Narrow(a, b), Vector128.Narrow(c, d)).AsSByte().CopyTo(codes.Slice(i, 16));
        }
        return i;
    }

    /// <summary>The scalar definition the SIMD path is tested against.</summary>
    public static void CodesReference(ReadOnlySpan<float> x, float scale, Span<sbyte> codes)
    {
        float inverse = scale == 0 ? 0 : 1f / scale;
        for (int i = 0; i < x.Length; i++) codes[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * inverse, MidpointRounding.ToEven), -127f, 127f);
    }
}
