using AnyBit.Formats;
using AnyBit.Quantization;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A table format's levels as integers the int8 dot product can use (its "book"; not the k-means codebooks of
/// <see cref="Quantization.CodebookFormat"/>): level[i] ≈ L[i] / <see cref="Scale"/>.
/// L is split into an unsigned low table (7 bits, or 8 when it is narrow) and, for wide books, an unsigned high
/// table: L = <see cref="Lo"/>[i] + 128·<see cref="Hi"/>[i] + <see cref="Offset"/>. Both tables stay within 0..128,
/// so every stored "code" is a valid unsigned operand for vpdpbusd and exact under AVX2's vpmaddubsw. The kernel
/// looks the tables up from the stored indices (vpshufb for 16 entries, vpermi2b or four vpshufb for 64) and runs
/// one dot product per table.
/// </summary>
internal sealed record LevelBook(string Name, int IndexBits, float Scale, byte[] Lo, byte[]? Hi, int Offset, double MaxLevelError)
{
    /// <summary>The tables in the forms <see cref="TableLookup"/> reads.</summary>
    public nint Tables { get; } = TableLookup.Create(Lo, Hi);

    /// <summary>True when every level is exactly L/Scale, so the kernels compute the format's own weights.</summary>
    public bool Exact => MaxLevelError == 0;

    /// <summary>The integer level of index <paramref name="i"/>.</summary>
    public int Level(int i) => Lo[i] + 128 * (Hi?[i] ?? 0) + Offset;

    /// <summary>
    /// NormalFloat4's levels are irrational: they are held as multiples of 2⁻¹³ (error ≤ 2⁻¹⁴ of the block's
    /// absmax, about 1/600 of NF4's own smallest step), the finest grid whose high table still fits 0..128.
    /// </summary>
    public static readonly LevelBook Nf4 = Build("nf4", 4, LookupTableFormat.Nf4, 8192f);

    /// <summary>bitsandbytes' FP4 levels are v/12 for v in {0, 1/16, 2, 3, 4, 6, 8, 12}: exactly 16·v/192.</summary>
    public static readonly LevelBook BnbFp4 = Build("fp4", 4, LookupTableFormat.Fp4, 192f);

    /// <summary>OCP E2M1 (MXFP4 elements): halves up to 6.</summary>
    public static readonly LevelBook E2M1 = Build("e2m1", 4, Minifloat.Parse("e2m1fn").DecodeTable.ToArray(), 2f);

    /// <summary>OCP E2M3 (MXFP6 elements): eighths up to 7.5, so 8·level fits one signed byte.</summary>
    public static readonly LevelBook E2M3 = Build("e2m3", 6, Minifloat.Parse("e2m3fn").DecodeTable.ToArray(), 8f);

    /// <summary>OCP E3M2 (MXFP6 elements): sixteenths up to 28, so 16·level needs the high table (up to 448).</summary>
    public static readonly LevelBook E3M2 = Build("e3m2", 6, Minifloat.Parse("e3m2fn").DecodeTable.ToArray(), 16f);

    private static readonly LevelBook[] Elements = [E2M1, E2M3, E3M2];

    /// <summary>The book whose levels are exactly <paramref name="element"/>'s values, if the kernels have one.</summary>
    public static LevelBook? ForElement(Minifloat element)
    {
        var values = element.DecodeTable.ToArray();
        foreach (var book in Elements)
            if (book.Lo.Length == values.Length && Enumerable.Range(0, values.Length).All(i => book.Level(i) / book.Scale == values[i]))
                return book;
        return null;
    }

    private static LevelBook Build(string name, int indexBits, float[] levels, float scale)
    {
        if (levels.Length != 1 << indexBits) throw new ArgumentException($"{name}: {levels.Length} levels for {indexBits}-bit indices");
        var l = levels.Select(v => (int)MathF.Round(v * scale)).ToArray();
        double error = levels.Select((v, i) => Math.Abs((double)v - l[i] / (double)scale)).Max();
        int min = l.Min(), max = l.Max();
        if (max - min <= 128)
            return new LevelBook(name, indexBits, scale, l.Select(v => (byte)(v - min)).ToArray(), null, min, error);
        // Wide: floor division keeps the low part in 0..127 for negative levels too.
        var hi = l.Select(v => (int)Math.Floor(v / 128.0)).ToArray();
        int hiMin = hi.Min();
        if (hi.Max() - hiMin > 128) throw new ArgumentException($"{name}: levels up to {max} do not fit two tables");
        return new LevelBook(name, indexBits, scale,
            l.Select((v, i) => (byte)(v - 128 * hi[i])).ToArray(), hi.Select(h => (byte)(h - hiMin)).ToArray(), 128 * hiMin, error);
    }
}
