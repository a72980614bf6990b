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
    /// <summary>A signed scale per 16 values (Q6_K, Q3_K): sbytes [16][rows].</summary>
    Signed16,
    /// <summary>A u8 zero point per super-block (AnyBit's int formats): bytes z[rows]; weight = d·(code − z).</summary>
    ZeroPoint,
}

/// <summary>
/// Every weight format the integer kernels run, described by one rule: a weight is
/// d · sc₁₆ · (code + offset) − dmin · m₁₆, with unsigned integer codes, an integer scale sc and min m per 16
/// values (1 and 0 where the format has none) and float d, dmin per super-block. Every ggml type below is exactly
/// this in integers, so an int8 activation's dot product with a row is exact up to the float combination per block.
/// </summary>
internal sealed record PackedKind(TensorType Type, int SuperBlock, int CodeBits, int Offset, SubScaleLayout Layout, bool HasMins)
{
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

    /// <summary>An AnyBit table format (NF4/FP4, MX, grouped minifloats) this kind runs, with its integer levels.</summary>
    public Quantization.TensorFormat? TableFormat { get; init; }
    public Codebook? Book { get; init; }

    /// <summary>
    /// MX kinds keep their E8M0 scale byte in memory (8 bytes per 8-row super-block instead of 32 of float32):
    /// d = 2^(e − 127 − <see cref="E8M0Shift"/>), the shift folding in the book's integer scale. −1 for float scales.
    /// </summary>
    public int E8M0Shift { get; init; } = -1;
    public bool E8M0 => E8M0Shift >= 0;

    /// <summary>AnyBit's k-bit integer format this kind runs, or null for a ggml type.</summary>
    public Quantization.IntFormat? Int { get; init; }

    /// <summary>Bytes of one stored block (one super-block of one row) in the file.</summary>
    public int BlockBytes => Int?.BytesPerBlock ?? TableFormat?.BytesPerBlock ?? TensorTypes.Traits(Type).BytesPerBlock;

    /// <summary>Group sizes the integer kernels are compiled for.</summary>
    public static readonly int[] IntGroupSizes = [32, 64, 128, 256];

    /// <summary>
    /// The kind for an AnyBit int format with groups: codes stored in 2, 3, 4, 5, 6 or 8 bits (1-bit codes take 2,
    /// 7-bit take 8), one super-block per group, weight = s·(code − z). Per-channel and per-tensor scopes are not run here.
    /// </summary>
    public static PackedKind? For(Quantization.TensorFormat? format, TensorType storedType)
    {
        if (format is null) return For(storedType);
        if (format.GgmlType is TensorType ggml) return For(ggml); // "q4_0" parsed as a format is the ggml type
        if (ForTable(format, storedType) is { } table) return table;
        if (format is not Quantization.IntFormat { Scope: Quantization.ScaleScope.Group } f || !IntGroupSizes.Contains(f.GroupSize)) return null;
        int storage = f.Bits switch { <= 2 => 2, 3 => 3, 4 => 4, 5 => 5, 6 => 6, _ => 8 };
        return new PackedKind(storedType, f.GroupSize, storage, 0, SubScaleLayout.ZeroPoint, false) { Int = f };
    }

    /// <summary>
    /// NF4/FP4 (bitsandbytes layout), MX blocks of 4- and 6-bit floats or int8 elements, and grouped minifloats of
    /// E2M1/E2M3/E3M2: each a float scale per group times a table level (or an int8) — the codebook kinds.
    /// </summary>
    private static PackedKind? ForTable(Quantization.TensorFormat format, TensorType storedType)
    {
        if (!IntGroupSizes.Contains(format.BlockSize)) return null;
        switch (format)
        {
            case Quantization.MxFormat { Element.ExponentBits: 0 } mx: // mxint8: an int8 element over 64
                return new PackedKind(storedType, mx.MxBlock, 8, -128, SubScaleLayout.None, false) { TableFormat = format, E8M0Shift = 6 };
            case Quantization.MxFormat mx when mx.Element.StoredBits <= 6:
                return WithBook(Codebook.ForElement(Formats.Minifloat.Parse(MxElementName(mx.Element)))) is { } k
                    ? k with { E8M0Shift = int.Log2((int)k.Book!.Scale) } : null;
            case Quantization.MinifloatFormat { PerChannel: false } mf when mf.Element.Bits <= 6:
                return WithBook(Codebook.ForElement(mf.Element));
            case Quantization.LookupTableFormat lt:
                return WithBook(lt.Kind == "nf4" ? Codebook.Nf4 : Codebook.BnbFp4);
            default:
                return null;
        }

        PackedKind? WithBook(Codebook? book) => book is null ? null
            : new PackedKind(storedType, format.BlockSize, book.IndexBits, book.Offset, SubScaleLayout.None, false)
            {
                TableFormat = format, Book = book, Lut = book.Lo, LutHigh = book.Hi,
            };
    }

    private static string MxElementName(Formats.MxElement e) => $"e{e.ExponentBits}m{e.MantissaBits - 2}fn";

    public static readonly PackedKind Q8_0 = new(TensorType.Q8_0, 32, 8, -128, SubScaleLayout.None, false) { HalfScale = true };
    public static readonly PackedKind Q4_0 = new(TensorType.Q4_0, 32, 4, -8, SubScaleLayout.None, false) { HalfScale = true };
    /// <summary>The legacy types with a min: weight = d·q + m, i.e. dmin = −m against Σx (the min counts once per value).</summary>
    public static readonly PackedKind Q4_1 = new(TensorType.Q4_1, 32, 4, 0, SubScaleLayout.None, true) { HalfScale = true };
    public static readonly PackedKind Q5_0 = new(TensorType.Q5_0, 32, 5, -16, SubScaleLayout.None, false) { HalfScale = true };
    public static readonly PackedKind Q5_1 = new(TensorType.Q5_1, 32, 5, 0, SubScaleLayout.None, true) { HalfScale = true };
    public static readonly PackedKind Q4_K = new(TensorType.Q4_K, 256, 4, 0, SubScaleLayout.ScaleMin32, true) { HalfScale = true };
    public static readonly PackedKind Q5_K = new(TensorType.Q5_K, 256, 5, 0, SubScaleLayout.ScaleMin32, true) { HalfScale = true };
    public static readonly PackedKind Q6_K = new(TensorType.Q6_K, 256, 6, -32, SubScaleLayout.Signed16, false) { HalfScale = true };
    public static readonly PackedKind Q3_K = new(TensorType.Q3_K, 256, 3, -4, SubScaleLayout.Signed16, false) { HalfScale = true };
    public static readonly PackedKind Q2_K = new(TensorType.Q2_K, 256, 2, 0, SubScaleLayout.PackedScaleMin16, true) { HalfScale = true };
    public static readonly PackedKind TQ2_0 = new(TensorType.TQ2_0, 256, 2, -1, SubScaleLayout.None, false) { HalfScale = true };
    /// <summary>TQ1_0's base-3 bytes are unpacked at load into TQ2_0's 2-bit codes: 2.06 instead of 1.69 bits
    /// per weight in memory, in exchange for a decode that is a shift and a mask.</summary>
    public static readonly PackedKind TQ1_0 = TQ2_0 with { Type = TensorType.TQ1_0 };
    public static readonly PackedKind IQ4_NL = new(TensorType.IQ4_NL, 32, 4, -128, SubScaleLayout.None, false)
    {
        HalfScale = true,
        Lut = Formats.GgmlHelpers.Iq4NlValues.Select(v => (byte)(v + 128)).ToArray(),
    };
    public static readonly PackedKind MXFP4 = new(TensorType.MXFP4, 32, 4, -12, SubScaleLayout.None, false)
    {
        Lut = Formats.GgmlHelpers.Mxfp4Values.Select(v => (byte)(v + 12)).ToArray(),
    };

    public static PackedKind? For(TensorType type) => type switch
    {
        TensorType.Q8_0 => Q8_0, TensorType.Q4_0 => Q4_0, TensorType.Q4_1 => Q4_1, TensorType.Q5_0 => Q5_0,
        TensorType.Q5_1 => Q5_1, TensorType.Q4_K => Q4_K, TensorType.Q5_K => Q5_K,
        TensorType.Q6_K => Q6_K, TensorType.Q3_K => Q3_K, TensorType.Q2_K => Q2_K, TensorType.TQ2_0 => TQ2_0,
        TensorType.TQ1_0 => TQ1_0, TensorType.IQ4_NL => IQ4_NL, TensorType.MXFP4 => MXFP4, _ => null,
    };

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
        _ => 16 * 8, // ScaleMin32: 2·8 sub-blocks × 8 rows; the 16-value layouts: 16 × 8 rows
    };

    public int SuperBlockBytes => CodeBytesPer32 * (SuperBlock / 32) + ParamBytes;

    /// <summary>
    /// Row groups are stored in pairs, super-block by super-block (group 2i's block s, then group 2i+1's): the kinds
    /// whose decode takes 16 rows at once — those without sub-scales or mins (Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4, the
    /// int formats, NF4/FP4, minifloat and MX books) and every K-quant, so that a 16-row decode streams one run of
    /// memory rather than two. Not the other 2-bit codes (TQ2_0/TQ1_0, int2): their 8-row tile measured faster than the 16-row one (−4 to −10 %).
    /// Must agree with PackedKernel's notion (the kernel tests would fail on every such kind otherwise).
    /// </summary>
    public bool PairedGroups => GroupLayout.Paired(Layout, HasMins, CodeBits);

    public override string ToString() => Int?.Name ?? TableFormat?.Name ?? Type.ToString();
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
