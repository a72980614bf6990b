using System.Globalization;
using System.Text.RegularExpressions;

namespace AnyBit.Formats;

/// <summary>How a minifloat spends its top exponent code and its sign.</summary>
public enum MinifloatVariant
{
    /// <summary>IEEE 754-like: the top exponent holds ±infinity (mantissa 0) and NaNs.</summary>
    Ieee,
    /// <summary>"fn" at 8 bits (OCP E4M3): no infinities; only S.1…1.1…1 is NaN, the rest of the top exponent is finite.</summary>
    FiniteWithNan,
    /// <summary>"fn" below 8 bits (OCP FP6/FP4): every code is a finite number.</summary>
    FiniteNoNan,
    /// <summary>"fnuz": no infinities, no negative zero; the negative-zero code 1.0…0 is the only NaN.</summary>
    Fnuz,
    /// <summary>Unsigned exponent-only E8M0 (MX scales): 2^(e−127), 0xFF is NaN, no zero.</summary>
    UnsignedExponent,
}

/// <summary>
/// A small floating-point format ExMy: 1 sign bit (unless unsigned), E exponent bits with a bias, M mantissa bits,
/// subnormals. Codes are the low (1+E+M) bits of a uint. Conversion from float32 rounds to nearest, ties to even
/// code, exactly as ml_dtypes does; values beyond the largest finite magnitude become ±infinity (IEEE), NaN (types
/// that have a NaN but no infinity), or — with <c>saturate</c> — the largest finite value.
/// </summary>
public sealed partial class Minifloat
{
    private readonly float[] _decode;          // value of every code
    private readonly float[] _positive;        // finite non-negative values, ascending
    private readonly uint[] _positiveCodes;    // their codes

    public string Name { get; }
    public int ExponentBits { get; }
    public int MantissaBits { get; }
    public int Bias { get; }
    public MinifloatVariant Variant { get; }
    public bool Signed => Variant != MinifloatVariant.UnsignedExponent;
    /// <summary>Bits per value.</summary>
    public int Bits => (Signed ? 1 : 0) + ExponentBits + MantissaBits;
    public float MaxFinite => _positive[^1];
    /// <summary>Smallest positive value (subnormal where the format has them).</summary>
    public float MinPositive => _positive[0] == 0 ? _positive[1] : _positive[0];

    public Minifloat(int exponentBits, int mantissaBits, MinifloatVariant variant, int? bias = null, string? name = null)
    {
        if (variant == MinifloatVariant.UnsignedExponent ? exponentBits != 8 || mantissaBits != 0 : exponentBits is < 1 or > 8 || mantissaBits is < 0 or > 10)
            throw new AnyBitException($"minifloat e{exponentBits}m{mantissaBits} is out of range (E in 1..8, M in 0..10)");
        ExponentBits = exponentBits; MantissaBits = mantissaBits; Variant = variant;
        Bias = bias ?? variant switch
        {
            MinifloatVariant.Fnuz => 1 << (exponentBits - 1),
            MinifloatVariant.UnsignedExponent => 127,
            _ => (1 << (exponentBits - 1)) - 1,
        };
        Name = name ?? $"e{exponentBits}m{mantissaBits}" + variant switch
        {
            MinifloatVariant.Ieee => "",
            MinifloatVariant.Fnuz => "fnuz",
            MinifloatVariant.UnsignedExponent => "fnu",
            _ => "fn",
        };
        int codes = 1 << Bits;
        _decode = new float[codes];
        for (uint c = 0; c < codes; c++) _decode[c] = DecodeFromBits(c);
        var positives = Enumerable.Range(0, codes).Select(c => (Code: (uint)c, Value: _decode[c]))
            .Where(p => float.IsFinite(p.Value) && p.Value >= 0 && !(p.Value == 0 && float.IsNegative(p.Value)))
            .OrderBy(p => p.Value).ToArray();
        _positive = positives.Select(p => p.Value).ToArray();
        _positiveCodes = positives.Select(p => p.Code).ToArray();
    }

    private float DecodeFromBits(uint code)
    {
        int m = (int)(code & ((1u << MantissaBits) - 1));
        int e = (int)((code >> MantissaBits) & ((1u << ExponentBits) - 1));
        bool negative = Signed && ((code >> (ExponentBits + MantissaBits)) & 1) != 0;
        int topExponent = (1 << ExponentBits) - 1;
        switch (Variant)
        {
            case MinifloatVariant.UnsignedExponent:
                return e == 255 ? float.NaN : (float)Math.Pow(2, e - 127);
            case MinifloatVariant.Ieee when e == topExponent:
                return m == 0 ? (negative ? float.NegativeInfinity : float.PositiveInfinity) : float.NaN;
            case MinifloatVariant.FiniteWithNan when e == topExponent && m == (1 << MantissaBits) - 1:
                return float.NaN;
            case MinifloatVariant.Fnuz when negative && e == 0 && m == 0:
                return float.NaN;
        }
        double magnitude = e == 0
            ? m * Math.Pow(2, 1 - Bias - MantissaBits)
            : (1 + m / (double)(1 << MantissaBits)) * Math.Pow(2, e - Bias);
        return (float)(negative ? -magnitude : magnitude);
    }

    /// <summary>The value of a code.</summary>
    public float Decode(uint code) => _decode[code & (uint)(_decode.Length - 1)];

    /// <summary>The value of every code, indexed by code.</summary>
    public ReadOnlySpan<float> DecodeTable => _decode;

    /// <summary>The code of NaN this format uses (ml_dtypes' canonical choice), or null when it has none.</summary>
    public uint? NanCode => Variant switch
    {
        MinifloatVariant.Ieee => (uint)((((1 << ExponentBits) - 1) << MantissaBits) | (1 << Math.Max(0, MantissaBits - 1))),
        MinifloatVariant.FiniteWithNan => (uint)((1 << (ExponentBits + MantissaBits)) - 1),
        MinifloatVariant.Fnuz => 1u << (ExponentBits + MantissaBits),
        MinifloatVariant.UnsignedExponent => 0xFF,
        _ => null,
    };

    /// <summary>Rounds <paramref name="x"/> to the nearest code (ties to the even code).</summary>
    public uint Encode(float x, bool saturate = false)
    {
        uint signBit = Signed ? 1u << (ExponentBits + MantissaBits) : 0;
        if (Variant == MinifloatVariant.UnsignedExponent) return EncodeExponent(x, saturate);
        if (float.IsNaN(x)) return NanOrZero(signBit, x);
        bool negative = float.IsNegative(x);
        float a = MathF.Abs(x);
        if (!Signed && negative && a != 0) return saturate ? _positiveCodes[0] : NanOrZero(signBit, x);
        uint sign = negative ? signBit : 0;
        if (float.IsInfinity(a))
            return saturate ? sign | _positiveCodes[^1] : Overflow(sign, signBit, x);

        // Find neighbours lo <= a < hi on the grid of finite values.
        int idx = Array.BinarySearch(_positive, a);
        uint code;
        if (idx >= 0) code = _positiveCodes[idx];
        else
        {
            int hiIdx = ~idx;
            if (hiIdx == 0) code = _positiveCodes[0]; // below the smallest value of a zero-less format
            else if (hiIdx == _positive.Length)
            {
                // Beyond the largest finite value: it overflows once it rounds past it, i.e. at or above the
                // midpoint to the next power-of-two step (the value the exponent range would hold next).
                double max = _positive[^1], step = max - _positive[^2];
                double next = MantissaBits == 0 ? max * 2 : max + step;
                double mid = (max + next) / 2;
                bool overflow = a > mid || (a == mid && (_positiveCodes[^1] & 1) == 1);
                if (!overflow) code = _positiveCodes[^1];
                else return saturate ? sign | _positiveCodes[^1] : Overflow(sign, signBit, x);
            }
            else
            {
                double lo = _positive[hiIdx - 1], hi = _positive[hiIdx];
                double mid = (lo + hi) / 2;
                if (a < mid) code = _positiveCodes[hiIdx - 1];
                else if (a > mid) code = _positiveCodes[hiIdx];
                else code = (_positiveCodes[hiIdx - 1] & 1) == 0 ? _positiveCodes[hiIdx - 1] : _positiveCodes[hiIdx];
            }
        }
        if (Variant == MinifloatVariant.Fnuz && code == 0) return 0; // no negative zero
        return sign | code;
    }

    /// <summary>Rounds to the format and back: the value <paramref name="x"/> becomes after encoding.</summary>
    public float Quantize(float x, bool saturate = false) => Decode(Encode(x, saturate));

    /// <summary>
    /// E8M0 as ml_dtypes converts to it: the nearest power of two with ties rounded up (a float32 mantissa of
    /// exactly one half goes to the next exponent); zero, negatives and NaN have no code but NaN (0xFF).
    /// </summary>
    private uint EncodeExponent(float x, bool saturate)
    {
        if (float.IsNaN(x) || x <= 0) return saturate && x <= 0 ? 0u : 0xFFu;
        if (float.IsPositiveInfinity(x)) return saturate ? 0xFEu : 0xFFu;
        int idx = Array.BinarySearch(_positive, x);
        if (idx >= 0) return _positiveCodes[idx];
        int hi = ~idx;
        if (hi == 0) return _positiveCodes[0];
        double top = hi == _positive.Length ? _positive[^1] * 2.0 : _positive[hi];
        double lo = _positive[hi - 1];
        bool up = x >= (lo + top) / 2;
        if (!up) return _positiveCodes[hi - 1];
        return hi == _positive.Length ? (saturate ? 0xFEu : 0xFFu) : _positiveCodes[hi];
    }

    private uint Overflow(uint sign, uint signBit, float x) => Variant switch
    {
        MinifloatVariant.Ieee => sign | (uint)(((1 << ExponentBits) - 1) << MantissaBits),
        MinifloatVariant.FiniteNoNan => sign | _positiveCodes[^1], // no infinity and no NaN to go to: saturate
        _ => NanOrZero(signBit, x),
    };

    private uint NanOrZero(uint signBit, float x)
    {
        if (NanCode is uint nan) return Variant is MinifloatVariant.Ieee or MinifloatVariant.FiniteWithNan && float.IsNegative(x) ? nan | signBit : nan;
        return signBit; // no NaN code: ml_dtypes gives the negative-zero pattern
    }

    // ---- names ----

    /// <summary>
    /// Parses a minifloat name: <c>e{E}m{M}</c> with an optional variant suffix (<c>fn</c>, <c>fnuz</c>) and bias
    /// (<c>b{N}</c>), or an alias (fp8_e4m3, float8_e5m2, bf16, fp16, e8m0, ...). Without a suffix the format is
    /// IEEE-like, except the OCP element types e4m3, e3m2, e2m3 and e2m1, which are "fn" as in the MX specification.
    /// </summary>
    public static Minifloat Parse(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        n = n.Replace("float8_", "").Replace("float6_", "").Replace("float4_", "").Replace("fp8_", "").Replace("fp6_", "").Replace("fp4_", "");
        switch (n)
        {
            case "bf16" or "bfloat16": return new Minifloat(8, 7, MinifloatVariant.Ieee, name: "bf16");
            case "f16" or "fp16" or "float16" or "half": return new Minifloat(5, 10, MinifloatVariant.Ieee, name: "f16");
            case "e8m0" or "e8m0fnu": return new Minifloat(8, 0, MinifloatVariant.UnsignedExponent, name: "e8m0fnu");
        }
        var m = NamePattern().Match(n);
        if (!m.Success)
            throw new AnyBitException($"'{name}' is not a minifloat (expected e{{E}}m{{M}}[fn|fnuz][b{{bias}}], e.g. e4m3fn, e5m2, e3m2, e4m3b11fnuz, bf16, e8m0)");
        int e = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), mant = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        int? bias = m.Groups[3].Success ? int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) : null;
        string suffix = m.Groups[4].Value;
        if (e is < 1 or > 8 || mant is < 0 or > 10)
            throw new AnyBitException($"'{name}': E must be 1..8 and M 0..10");
        bool ocpElement = suffix == "" && (e, mant) is (4, 3) or (3, 2) or (2, 3) or (2, 1);
        var variant = suffix switch
        {
            "fnuz" => MinifloatVariant.Fnuz,
            "fn" => 1 + e + mant >= 8 ? MinifloatVariant.FiniteWithNan : MinifloatVariant.FiniteNoNan,
            _ when ocpElement => 1 + e + mant >= 8 ? MinifloatVariant.FiniteWithNan : MinifloatVariant.FiniteNoNan,
            _ => MinifloatVariant.Ieee,
        };
        if (variant == MinifloatVariant.Ieee && e == 1)
            throw new AnyBitException($"'{name}': an IEEE-like format needs at least 2 exponent bits (use e1m{mant}fn)");
        string canonical = $"e{e}m{mant}" + (bias is int b ? $"b{b}" : "") + (variant switch
        {
            MinifloatVariant.Ieee => "",
            MinifloatVariant.Fnuz => "fnuz",
            _ => "fn",
        });
        return new Minifloat(e, mant, variant, bias, canonical);
    }

    [GeneratedRegex(@"^e(\d+)m(\d+)(?:b(\d+))?(fnuz|fn)?$")]
    private static partial Regex NamePattern();

    public override string ToString() => Name;
}
