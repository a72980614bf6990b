using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace AnyBit.Formats;

/// <summary>
/// The float conventions ggml's reference quantizers rely on. They are compiled as plain IEEE float32 code without
/// FMA contraction, so writing each expression in the same order in C# reproduces their bytes exactly.
/// </summary>
internal static class GgmlHelpers
{
    /// <summary>ggml's nearest_int: round half to even (the 1.5·2^23 trick), for |x| ≤ 2^22.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float x) => (int)MathF.Round(x, MidpointRounding.ToEven);

    /// <summary>C's roundf/lroundf: round half away from zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RoundAway(float x) => (int)MathF.Round(x, MidpointRounding.AwayFromZero);

    public static float ReadHalf(ReadOnlySpan<byte> b, int offset) => (float)BinaryPrimitives.ReadHalfLittleEndian(b[offset..]);

    /// <summary>fp32 → fp16 rounding to nearest even, as GGML_FP32_TO_FP16.</summary>
    public static void WriteHalf(Span<byte> b, int offset, float value) => BinaryPrimitives.WriteHalfLittleEndian(b[offset..], (Half)value);

    /// <summary>The fp16 value a float becomes when stored (GGML_FP16_TO_FP32(GGML_FP32_TO_FP16(x))).</summary>
    public static float RoundTripHalf(float value) => (float)(Half)value;

    /// <summary>
    /// The value of largest magnitude, with its sign (the first one on ties), as ggml's scans find it; also returns
    /// that magnitude.
    /// </summary>
    public static float SignedMaxMagnitude(ReadOnlySpan<float> x, out float amax)
    {
        amax = 0;
        float max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        return max;
    }

    /// <summary>Smallest and largest value of a block (ggml's min/max scan starting from ±FLT_MAX).</summary>
    public static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (float v in x) { if (v < min) min = v; if (v > max) max = v; }
        return (min, max);
    }

    /// <summary>E8M0 scale halved: 2^(e−128), the scale ggml's MXFP4 multiplies its doubled E2M1 values by.</summary>
    public static float E8M0Half(byte e) => e < 2 ? BitConverter.UInt32BitsToSingle(0x00200000u << e) : BitConverter.UInt32BitsToSingle((uint)(e - 1) << 23);
}
