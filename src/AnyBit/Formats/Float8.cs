namespace AnyBit.Formats;

/// <summary>
/// Decoding of the two 8-bit float types safetensors stores (F8_E4M3 = OCP E4M3FN, F8_E5M2 = IEEE-like E5M2).
/// The full minifloat family with encoders comes with the formats work.
/// </summary>
public static class Float8
{
    /// <summary>E4M3FN: bias 7, no infinities, S.1111.111 is NaN, largest finite 448.</summary>
    public static float E4M3FnToSingle(byte b)
    {
        int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 7;
        if (exp == 0xF && man == 7) return float.NaN;
        float v = exp == 0 ? man / 8f * MathF.Pow(2, -6) : (1 + man / 8f) * MathF.Pow(2, exp - 7);
        return sign != 0 ? -v : v;
    }

    /// <summary>E5M2: bias 15, IEEE infinities and NaNs, largest finite 57344.</summary>
    public static float E5M2ToSingle(byte b)
    {
        int sign = b >> 7, exp = (b >> 2) & 0x1F, man = b & 3;
        float v;
        if (exp == 0x1F) v = man == 0 ? float.PositiveInfinity : float.NaN;
        else v = exp == 0 ? man / 4f * MathF.Pow(2, -14) : (1 + man / 4f) * MathF.Pow(2, exp - 15);
        return sign != 0 ? -v : v;
    }
}
