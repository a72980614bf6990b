using System.Runtime.CompilerServices;
using AnyBit.IO;

namespace AnyBit.Kernels.Quantized;

/// <summary>How a kind's per-row sub-scales are laid out in the repacked matrix.</summary>
internal enum SubScaleLayout
{
    /// <summary>One float scale per super-block, nothing finer (Q8_0, Q4_0, TQ2_0, TQ1_0).</summary>
    None,
    /// <summary>An unsigned 6-bit scale and min per 32 values (Q4_K, Q5_K): bytes sc[8][rows], m[8][rows].</summary>
    ScaleMin32,
    /// <summary>A 4-bit scale and 4-bit min per 16 values in one byte, as Q2_K stores them: [16][rows].</summary>
    PackedScaleMin16,
    /// <summary>A signed scale per 16 values (Q6_K, Q3_K, the grid i-quants): sbytes [16][rows].</summary>
    Signed16,
    /// <summary>A signed scale per 32 values (IQ4_XS): sbytes sc[8][rows], half of Signed16's bytes.</summary>
    Signed32,
    /// <summary>A u8 zero point per super-block (AnyBit's int formats): bytes z[rows]; weight = d·(code − z).</summary>
    ZeroPoint,
}

/// <summary>
/// How a format's blocks are held and multiplied by the integer kernels, described by one rule: a weight is
/// d · sc₁₆ · (code + offset) − dmin · m₁₆, with unsigned integer codes, an integer scale sc and min m per 16
/// values (1 and 0 where the format has none) and float d, dmin per super-block. Every ggml type the kernels run is
/// exactly this in integers, so an int8 activation's dot product with a row is exact up to the float combination per
/// block. A format states its kind once, as the compile-time traits its kernel is specialised for
/// (<see cref="Of{TK}"/>); the record is those traits as values, for the code that repacks and reports.
/// </summary>
internal sealed record PackedKind(TensorType Type, int SuperBlock, int CodeBits, int Offset, SubScaleLayout Layout, bool HasMins)
{
    /// <summary>The format whose blocks this kind reads (<see cref="Quantization.TensorFormat.DecodeBlock"/>).</summary>
    public required Quantization.TensorFormat Format { get; init; }

    /// <summary>Resolves the kernel specialised for this kind.</summary>
    public required KernelBinding Binding { get; init; }

    /// <summary>
    /// For codebook types: the integer each 4-bit index stands for, biased to be unsigned (IQ4_NL's values + 128,
    /// MXFP4's doubled E2M1 values + 12). Codes stay 4-bit indices in memory; the kernel looks them up with vpshufb.
    /// </summary>
    public byte[]? Lut { get; init; }

    /// <summary>For wide codebooks: a second table, the index standing for Lut + 128·LutHigh (+ Offset).</summary>
    public byte[]? LutHigh { get; init; }

    /// <summary>
    /// The unsigned integer a stored code enters the dot product as: its table entry for codebook kinds
    /// (Lut + 128·LutHigh), the code itself otherwise. <see cref="Offset"/> is applied separately, per Σx.
    /// </summary>
    public int Unsigned(int code) => Lut is { } lut ? lut[code] + 128 * (LutHigh?[code] ?? 0) : code;

    /// <summary>The codebook of an AnyBit table format (NF4/FP4, MX, grouped minifloats), with its integer levels.</summary>
    public LevelBook? Book { get; init; }

    /// <summary>
    /// MX kinds keep their E8M0 scale byte in memory (8 bytes per 8-row super-block instead of 32 of float32):
    /// d = 2^(e − 127 − <see cref="E8M0Shift"/>), the shift folding in the book's integer scale. −1 for float scales.
    /// </summary>
    public int E8M0Shift { get; init; } = -1;
    public bool E8M0 => E8M0Shift >= 0;

    /// <summary>The largest code of a kind whose codes do not use their storage width (<see cref="IKindTraits.MaxCode"/>);
    /// 0 for the others.</summary>
    public int StatedMaxCode { get; init; }

    /// <summary>Ternary codes (TQ2_0, and TQ1_0 unpacked to them): 0..2 standing for −1..1, one scale per 256.</summary>
    public bool Ternary { get; init; }

    /// <summary>AnyBit's k-bit integer format this kind runs, or null.</summary>
    public Quantization.IntFormat? Int => Format as Quantization.IntFormat;

    /// <summary>Bytes of one stored block (one super-block of one row) in the file.</summary>
    public int BlockBytes => Format.BytesPerBlock;

    /// <summary>The kind of a format whose kernel is specialised for <typeparamref name="TK"/>.</summary>
    public static PackedKind Of<TK>(Quantization.TensorFormat format) where TK : struct, IKindTraits =>
        new(format.GgmlType ?? default, TK.SuperBlock, TK.Bits, TK.Offset, TK.Layout, TK.HasMins)
        {
            Format = format, Binding = new KernelBinding<TK>(), HalfScale = TK.HalfScale, Lut = TK.Lut, LutHigh = TK.LutHigh,
            E8M0Shift = TK.E8M0 ? TK.E8M0Shift : -1, Ternary = TK.Ternary, StatedMaxCode = TK.MaxCode,
        };

    /// <summary>The kind tensors stored as <paramref name="format"/> (or, with none, as the table's row for
    /// <paramref name="storedType"/>) run as; null where they run on the float path.</summary>
    public static PackedKind? For(Quantization.TensorFormat? format, TensorType storedType) =>
        (format ?? Formats.FormatTable.ByType(storedType))?.Kind;

    /// <summary>The kind of a ggml type id; null where it runs on the float path or is unknown.</summary>
    public static PackedKind? For(TensorType type) => Formats.FormatTable.ByType(type)?.Kind;

    /// <summary>Bytes of codes for 8 rows × 32 values.</summary>
    public int CodeBytesPer32 => 32 * CodeBits;

    /// <summary>
    /// The 8 rows' d (and dmin) are kept as the file's f16 values (16 bytes each instead of 32): every ggml type but
    /// MXFP4 stores them so. For the 32-value legacy blocks an f32 scale was half a bit per weight of extra memory
    /// traffic in a decode step bound by it; for K-quants an eighth of a bit (Q2_K: 2.75 → 2.625 bits in memory).
    /// </summary>
    public bool HalfScale { get; init; }

    public int ParamBytes => ParamBytesOf(HasMins, Layout, E8M0, HalfScale);

    /// <summary>Bytes of the 8 rows' d (dmin after it, as many again): f16 or f32.</summary>
    public static int ScaleBytesOf(bool halfScale) => halfScale ? 16 : 32;

    /// <summary>Bytes of scales for 8 rows × one super-block, after the codes.</summary>
    /// <remarks>Inlined so that the kernels' BlockBytes folds to a JIT-time constant (their prefetch tests with it).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ParamBytesOf(bool hasMins, SubScaleLayout layout, bool e8m0 = false, bool halfScale = false) => e8m0 ? 8 : ScaleBytesOf(halfScale) * (hasMins ? 2 : 1) + layout switch
    {
        SubScaleLayout.None => 0,
        SubScaleLayout.ZeroPoint => 8,
        SubScaleLayout.Signed32 => 8 * 8, // 8 sub-blocks × 8 rows
        _ => 16 * 8, // ScaleMin32: 2·8 sub-blocks × 8 rows; the 16-value layouts: 16 × 8 rows
    };

    public int SuperBlockBytes => CodeBytesPer32 * (SuperBlock / 32) + ParamBytes;

    /// <summary>Row groups are stored in pairs, super-block by super-block (<see cref="GroupLayout.Paired"/> decides
    /// which kinds, and why).</summary>
    public bool PairedGroups => GroupLayout.Paired(Layout, HasMins, CodeBits);

    public override string ToString() => Format is Quantization.GgmlFormat g ? g.TypeName : Format.Name;
}

/// <summary>One row's super-block decoded into the integer form of <see cref="PackedKind"/>.</summary>
internal ref struct DecodedBlock
{
    public Span<byte> Codes;   // SuperBlock values
    public Span<int> Scales16; // SuperBlock/16 (1 where the format has no sub-scales)
    public Span<int> Mins16;   // SuperBlock/16 (0 where the format has no mins)
    public float D, DMin;
    public int Exponent;       // the E8M0 scale byte of an MX block (D = 2^(Exponent − 127) / book scale)
    public int Zero;           // weight = D·(code − Zero) for the int formats; 0 otherwise
}
