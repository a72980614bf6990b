using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A kind's layout as compile-time constants, so that the JIT specialises the generic kernels per kind and folds
/// every layout branch away (one kernel source, one machine-code kernel per kind and instruction set). Each format
/// declares its traits once (the ggml types in their files under Formats/Ggml, the AnyBit families beside their
/// format); <see cref="PackedKind.Of{TK}"/> turns them into the values the repacking code reads.
/// </summary>
internal interface IKindTraits
{
    static abstract int Bits { get; }
    static abstract int SuperBlock { get; }
    static abstract int Offset { get; }
    static abstract SubScaleLayout Layout { get; }
    static abstract bool HasMins { get; }
    /// <summary>Codes are 4- or 6-bit indices into the tables at <see cref="Tables"/> (<see cref="TableLookup"/>).</summary>
    static virtual bool HasLut => false;
    /// <summary>The table has a high half as well: level = low + 128·high + Offset.</summary>
    static virtual bool WideLut => false;
    /// <summary>Address of the kind's <see cref="TableLookup"/> tables (read once per kernel call).</summary>
    static virtual nint Tables => 0;
    /// <summary>Scales are E8M0 bytes (MX), d = 2^(e − 127 − <see cref="E8M0Shift"/>); otherwise float32.</summary>
    static virtual bool E8M0 => false;
    /// <summary>The 8 rows' scales are f16 (see <see cref="PackedKind.HalfScale"/>).</summary>
    static virtual bool HalfScale => false;
    static virtual int E8M0Shift => 0;
    /// <summary>
    /// The E8M0 bytes are kept as stored (some are 0, 255 or within <see cref="E8M0Shift"/> of 0) and decoded range
    /// by range; otherwise the matrix holds e − shift, a normal float's exponent field (see PackedMatrix.RawExponents).
    /// </summary>
    static virtual bool RawExponents => false;
    /// <summary>An upper bound of the kind's table entries (the unsigned codes its dot products see): small books'
    /// products fit int16 pair sums over several chunks (<see cref="PackedKernel{TK, TD}"/>'s 512-bit decode).</summary>
    static virtual int MaxTableEntry => 255;
    /// <summary>The table of <see cref="HasLut"/> kinds as values (<see cref="PackedKind.Lut"/>), and its high half.</summary>
    static virtual byte[]? Lut => null;
    static virtual byte[]? LutHigh => null;
    /// <summary>Ternary codes 0..2 (<see cref="PackedKind.Ternary"/>).</summary>
    static virtual bool Ternary => false;
    /// <summary>The largest code a kind without tables stores, where that is less than its storage width allows
    /// (<see cref="SignedByteCodes"/>: 0..127 in bytes, which AVX2 multiplies without the sign trick); 0: the width's.</summary>
    static virtual int MaxCode => 0;
}

/// <summary>
/// The integer form of the grid i-quants (IQ1_S/M, IQ2_XXS/XS/S, IQ3_XXS/S), ggml's Q8_K with sub-scales: a signed
/// code q in −64..63 per value, stored as q + <see cref="Bias"/> in a byte, a signed sub-scale per 16 values and a
/// float32 d per 256; weight = d·sc₁₆·q. A type's DecodeBlock turns its grid indices, sign bits and scales into it:
/// IQ3_S q = ±{1, 3, …, 15}, sc = 2ls + 1, d; IQ3_XXS ±{4, …, 62}, 2ls + 1, d/4; IQ2_XXS/XS/S ±{8, 25, 43}, 2ls + 1,
/// d/8; IQ1_S/M 8g ± 1 (g ∈ {−1, 0, 1}, the sign of the block's delta), 2ls + 1, d/8. Each d·sc·q is then exactly the
/// float ggml's dequantizer computes (the products have at most 22 significant bits), so the generic dequantizer
/// (<c>BlockDequantizer</c>) reproduces it, and the kernels' integer sums are exact. Why this shape: the codes fit 7
/// bits, so AVX2's vpmaddubsw multiplies them as they are (no sign trick; the bias is one offset per Σx), and d stays
/// float32 because a small f16 d over 8 would be an f16 subnormal. A type uses it as its kernel traits
/// (<c>GgmlBlockFormat&lt;BlockIQ2_XXS, SignedByteCodes&gt;</c>) or declares the same constants in its own
/// <c>Kernel</c>.
/// </summary>
internal struct SignedByteCodes : IKindTraits
{
    /// <summary>What DecodeBlock adds to each signed code: Codes[i] = q + Bias.</summary>
    public const int Bias = 64;
    public static int Bits => 8; public static int SuperBlock => 256; public static int Offset => -Bias;
    public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
    public static int MaxCode => 2 * Bias - 1;
}

/// <summary>A compile-time integer for generic kernel parameters.</summary>
internal interface IConstant { static abstract int Value { get; } }
internal struct C0 : IConstant { public static int Value => 0; }
internal struct C1 : IConstant { public static int Value => 1; }
internal struct C2 : IConstant { public static int Value => 2; }
internal struct C3 : IConstant { public static int Value => 3; }
internal struct C4 : IConstant { public static int Value => 4; }
internal struct C5 : IConstant { public static int Value => 5; }
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

/// <summary>MX blocks of int8 elements: Q8_0's arithmetic with an E8M0 scale and any compiled group size.</summary>
internal struct MxInt8Traits<TGroup> : IKindTraits where TGroup : struct, IConstant
{
    public static int Bits => 8; public static int SuperBlock => TGroup.Value; public static int Offset => -128;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
    public static bool E8M0 => true; public static int E8M0Shift => 6;
}

/// <summary>
/// An MX kind <typeparamref name="TK"/> whose matrix keeps its E8M0 bytes as stored, for the rare matrix with an
/// exponent a float's exponent field cannot hold after the shift (see <see cref="IKindTraits.RawExponents"/>).
/// </summary>
internal struct RawExponentsOf<TK> : IKindTraits where TK : struct, IKindTraits
{
    public static int Bits => TK.Bits; public static int SuperBlock => TK.SuperBlock; public static int Offset => TK.Offset;
    public static SubScaleLayout Layout => TK.Layout; public static bool HasMins => TK.HasMins;
    public static bool HasLut => TK.HasLut; public static bool WideLut => TK.WideLut; public static nint Tables => TK.Tables;
    public static bool E8M0 => TK.E8M0; public static int E8M0Shift => TK.E8M0Shift; public static bool HalfScale => TK.HalfScale;
    public static bool RawExponents => true; public static int MaxTableEntry => TK.MaxTableEntry;
    public static byte[]? Lut => TK.Lut; public static byte[]? LutHigh => TK.LutHigh; public static bool Ternary => TK.Ternary;
    public static int MaxCode => TK.MaxCode;
}

/// <summary>A <see cref="LevelBook"/> as compile-time constants (tests check that they match the book).</summary>
internal interface IBook
{
    static abstract LevelBook Book { get; }
    static abstract int IndexBits { get; }
    static abstract bool Wide { get; }
    /// <summary>An upper bound of the book's low-table entries (tests check it against the book).</summary>
    static abstract int MaxEntry { get; }
}
internal struct Nf4Book : IBook { public static LevelBook Book => LevelBook.Nf4; public static int IndexBits => 4; public static bool Wide => true; public static int MaxEntry => 128; }
internal struct BnbFp4Book : IBook { public static LevelBook Book => LevelBook.BnbFp4; public static int IndexBits => 4; public static bool Wide => true; public static int MaxEntry => 128; }
internal struct E2M1Book : IBook { public static LevelBook Book => LevelBook.E2M1; public static int IndexBits => 4; public static bool Wide => false; public static int MaxEntry => 24; }
internal struct E2M3Book : IBook { public static LevelBook Book => LevelBook.E2M3; public static int IndexBits => 6; public static bool Wide => false; public static int MaxEntry => 120; }
internal struct E3M2Book : IBook { public static LevelBook Book => LevelBook.E3M2; public static int IndexBits => 6; public static bool Wide => true; public static int MaxEntry => 128; }

/// <summary>A codebook kind: a float scale per group times the book's integer level of each 4- or 6-bit index.</summary>
internal struct LevelBookTraits<TB, TGroup> : IKindTraits where TB : struct, IBook where TGroup : struct, IConstant
{
    public static int Bits => TB.IndexBits; public static int SuperBlock => TGroup.Value; public static int Offset => TB.Book.Offset;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
    public static bool HasLut => true; public static bool WideLut => TB.Wide; public static nint Tables => TB.Book.Tables;
    public static int MaxTableEntry => TB.MaxEntry; public static byte[]? Lut => TB.Book.Lo; public static byte[]? LutHigh => TB.Book.Hi;
}

/// <summary>A codebook kind in MX blocks: the same, with E8M0 scale bytes.</summary>
internal struct MxLevelBookTraits<TB, TGroup> : IKindTraits where TB : struct, IBook where TGroup : struct, IConstant
{
    public static bool E8M0 => true; public static int E8M0Shift => int.Log2((int)TB.Book.Scale);
    public static int Bits => TB.IndexBits; public static int SuperBlock => TGroup.Value; public static int Offset => TB.Book.Offset;
    public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
    public static bool HasLut => true; public static bool WideLut => TB.Wide; public static nint Tables => TB.Book.Tables;
    public static int MaxTableEntry => TB.MaxEntry; public static byte[]? Lut => TB.Book.Lo; public static byte[]? LutHigh => TB.Book.Hi;
}

/// <summary>AnyBit's int formats of <typeparamref name="TBits"/> storage bits, any compiled group size.</summary>
internal struct IntFamily<TBits> : IGroupFamily where TBits : struct, IConstant
{
    public static KernelBinding Binding<TG>() where TG : struct, IConstant => new KernelBinding<IntTraits<TBits, TG>>();
}

/// <summary>MX blocks of int8 elements, any compiled group size.</summary>
internal struct MxInt8Family : IGroupFamily
{
    public static KernelBinding Binding<TG>() where TG : struct, IConstant => new KernelBinding<MxInt8Traits<TG>>();
}

/// <summary>A codebook with float scales (<typeparamref name="TB"/>), any compiled group size.</summary>
internal struct BookFamily<TB> : IGroupFamily where TB : struct, IBook
{
    public static KernelBinding Binding<TG>() where TG : struct, IConstant => new KernelBinding<LevelBookTraits<TB, TG>>();
}

/// <summary>A codebook in MX blocks (E8M0 scales), any compiled group size.</summary>
internal struct MxBookFamily<TB> : IGroupFamily where TB : struct, IBook
{
    public static KernelBinding Binding<TG>() where TG : struct, IConstant => new KernelBinding<MxLevelBookTraits<TB, TG>>();
}

/// <summary>The kernel bindings of the codebook kinds: which <see cref="IBook"/> a <see cref="LevelBook"/> is.</summary>
internal static class BookBindings
{
    public static KernelBinding For(LevelBook book, int group, bool e8m0)
    {
        if (book == LevelBook.Nf4 && !e8m0) return KernelGroups.For<BookFamily<Nf4Book>>(group);
        if (book == LevelBook.BnbFp4 && !e8m0) return KernelGroups.For<BookFamily<BnbFp4Book>>(group);
        if (book == LevelBook.E2M1) return e8m0 ? KernelGroups.For<MxBookFamily<E2M1Book>>(group) : KernelGroups.For<BookFamily<E2M1Book>>(group);
        if (book == LevelBook.E2M3) return e8m0 ? KernelGroups.For<MxBookFamily<E2M3Book>>(group) : KernelGroups.For<BookFamily<E2M3Book>>(group);
        if (book == LevelBook.E3M2) return e8m0 ? KernelGroups.For<MxBookFamily<E3M2Book>>(group) : KernelGroups.For<BookFamily<E3M2Book>>(group);
        throw new NotSupportedException($"no integer kernel for book {book.Name}");
    }

    /// <summary>The kind of a codebook format: a float (or E8M0) scale per group times the book's integer level.</summary>
    public static PackedKind Kind(Quantization.TensorFormat format, LevelBook book, bool e8m0) =>
        new(format.GgmlType ?? default, format.BlockSize, book.IndexBits, book.Offset, SubScaleLayout.None, false)
        {
            Format = format, Binding = For(book, format.BlockSize, e8m0), Book = book, Lut = book.Lo, LutHigh = book.Hi,
            E8M0Shift = e8m0 ? int.Log2((int)book.Scale) : -1,
        };
}
