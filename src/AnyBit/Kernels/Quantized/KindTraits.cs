using System.Runtime.Intrinsics;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A <see cref="PackedKind"/> as compile-time constants, so that the JIT specialises the generic kernel per kind
/// and folds every layout branch away (one kernel source, seven machine-code kernels).
/// </summary>
internal interface IKindTraits
{
    static abstract int Bits { get; }
    static abstract int SuperBlock { get; }
    static abstract int Offset { get; }
    static abstract SubScaleLayout Layout { get; }
    static abstract bool HasMins { get; }
    /// <summary>4-bit codes are indices into <see cref="Table"/> (vpshufb, the 16 entries repeated in both lanes).</summary>
    static virtual bool HasLut => false;
    static virtual Vector256<byte> Table => default;
}

internal struct Q8_0Traits : IKindTraits
{
    public static int Bits => 8; public static int SuperBlock => 32; public static int Offset => -128;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
}
internal struct Q4_0Traits : IKindTraits
{
    public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -8;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
}
internal struct Q4_KTraits : IKindTraits
{
    public static int Bits => 4; public static int SuperBlock => 256; public static int Offset => 0;
    public static SubScaleLayout Layout => SubScaleLayout.ScaleMin32; public static bool HasMins => true;
}
internal struct Q5_KTraits : IKindTraits
{
    public static int Bits => 8; public static int SuperBlock => 256; public static int Offset => 0;
    public static SubScaleLayout Layout => SubScaleLayout.ScaleMin32; public static bool HasMins => true;
}
internal struct Q6_KTraits : IKindTraits
{
    public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
    public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
}
internal struct Q3_KTraits : IKindTraits
{
    public static int Bits => 3; public static int SuperBlock => 256; public static int Offset => -4;
    public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
}
internal struct Q2_KTraits : IKindTraits
{
    public static int Bits => 2; public static int SuperBlock => 256; public static int Offset => 0;
    public static SubScaleLayout Layout => SubScaleLayout.PackedScaleMin16; public static bool HasMins => true;
}
internal struct TernaryTraits : IKindTraits
{
    public static int Bits => 2; public static int SuperBlock => 256; public static int Offset => -1;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
}

/// <summary>A compile-time integer for generic kernel parameters.</summary>
internal interface IConstant { static abstract int Value { get; } }
internal struct C2 : IConstant { public static int Value => 2; }
internal struct C3 : IConstant { public static int Value => 3; }
internal struct C4 : IConstant { public static int Value => 4; }
internal struct C6 : IConstant { public static int Value => 6; }
internal struct C8 : IConstant { public static int Value => 8; }
internal struct C32 : IConstant { public static int Value => 32; }
internal struct C64 : IConstant { public static int Value => 64; }
internal struct C128 : IConstant { public static int Value => 128; }
internal struct C256 : IConstant { public static int Value => 256; }

/// <summary>AnyBit's int formats: codes of <typeparamref name="TBits"/> storage bits, one zero point and scale per group.</summary>
internal struct IntTraits<TBits, TGroup> : IKindTraits where TBits : struct, IConstant where TGroup : struct, IConstant
{
    public static int Bits => TBits.Value; public static int SuperBlock => TGroup.Value; public static int Offset => 0;
    public static SubScaleLayout Layout => SubScaleLayout.ZeroPoint; public static bool HasMins => false;
}

internal struct Iq4NlTraits : IKindTraits
{
    private static readonly Vector256<byte> s_table = Vector256.Create(Vector128.Create(PackedKind.IQ4_NL.Lut!));
    public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -128;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
    public static bool HasLut => true; public static Vector256<byte> Table => s_table;
}
internal struct Mxfp4Traits : IKindTraits
{
    private static readonly Vector256<byte> s_table = Vector256.Create(Vector128.Create(PackedKind.MXFP4.Lut!));
    public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -12;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
    public static bool HasLut => true; public static Vector256<byte> Table => s_table;
}
