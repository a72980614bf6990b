using System.Runtime.InteropServices;
using AnyBit.IO;

namespace AnyBit.Kernels.Quantized;

/// <summary>Which layout a matrix is repacked into, and so which kernel multiplies it.</summary>
public enum MatrixLayout
{
    /// <summary>The layout the format measured fastest in on this CPU (<see cref="BitSerialMatrix.Preferred"/>).</summary>
    Auto,
    /// <summary>8-row groups for the int8 dot-product kernels (every format).</summary>
    Interleaved,
    /// <summary>Bit planes in 32-row tiles for the T-MAC lookup-table kernel (int1–int4 on AVX-512 BW; others fall back).</summary>
    BitSerial,
    /// <summary>Base-3 indices of 3 ternary weights for the bitnet.cpp-TL-style kernel (TQ2_0/TQ1_0 on AVX-512 BW).</summary>
    TernaryTable,
}

/// <summary>
/// A quantized weight matrix [rows, columns] repacked once at load into the layout the integer kernels read:
/// groups of 8 rows, and within a group, per super-block, the codes of the 8 rows interleaved so that one 32-byte
/// vector holds 4 consecutive codes of each of the 8 rows (lane r of an int32 vector = row r), followed by the
/// super-block's scales for the 8 rows. A VNNI dot product of that vector with 4 broadcast activation bytes then
/// advances all 8 row sums at once, with no horizontal reduction. Codes narrower than a byte share a byte: with
/// 4-bit codes byte (r, e) of vector k holds chunk k in its low and chunk k+4 in its high nibble; with 2-bit codes
/// vector k holds chunks k, k+2, k+4, k+6 at shifts 0, 2, 4, 6. 6-bit codes are a 4-bit plane then a 2-bit plane of
/// their high bits, 5-bit codes a 4-bit plane then a 1-bit plane, 3-bit codes a 2-bit plane then a 1-bit plane (bit c of byte (r, e) is chunk c's third bit), so
/// memory holds what the file holds. The last group is padded with zero rows.
/// </summary>
/// <remarks>int1–int4 and ternary matrices may instead be held in a lookup-table kernel's layout (<see cref="Lookup"/>).</remarks>
public sealed unsafe class PackedMatrix : IDisposable
{
    public const int GroupRows = 8;

    private byte* _data;
    private readonly byte[]? _source; // the ggml bytes, kept only for the scalar reference kernel

    internal PackedMatrix(PackedKind kind, int rows, int columns, ReadOnlySpan<byte> ggml, bool keepSource, MatrixLayout layout = MatrixLayout.Auto)
    {
        if (columns % kind.SuperBlock != 0) throw new AnyBitException($"{kind} matrix of {columns} columns is not whole blocks of {kind.SuperBlock}");
        long expected = (long)rows * columns / kind.SuperBlock * kind.BlockBytes;
        if (ggml.Length != expected) throw new AnyBitException($"{kind} matrix [{rows}, {columns}] needs {expected} bytes, got {ggml.Length}");
        Kind = kind; Rows = rows; Columns = columns;
        Groups = (rows + GroupRows - 1) / GroupRows;
        SuperBlocks = columns / kind.SuperBlock;
        GroupBytes = (long)SuperBlocks * kind.SuperBlockBytes;
        // What multiplies this matrix is decided here, once (KernelPaths.LayoutFor, then Choose after repacking), and
        // recorded in Choice.
        var held = KernelPaths.LayoutFor(kind, columns, layout);
        if (held != MatrixLayout.Interleaved)
        {
            fixed (byte* source = ggml)
                Lookup = held == MatrixLayout.BitSerial ? new BitSerialMatrix(kind, rows, columns, source) : new TernaryTableMatrix(kind, rows, columns, source);
            ByteLength = Lookup.ByteLength;
            Choice = KernelPaths.ChooseLookup(Lookup, layout);
            if (keepSource) _source = ggml.ToArray();
            return;
        }
        ByteLength = Groups * GroupBytes;
        // Paired kinds hold an even number of groups (a last odd group's partner is zero rows, never read).
        long allocated = (kind.PairedGroups ? (Groups + 1) & ~1 : Groups) * GroupBytes;
        _data = (byte*)LargePageMemory.Allocate((nuint)allocated);
        NativeMemory.Clear(_data, (nuint)allocated);
        fixed (byte* source = ggml) Repack(source);
        if (kind.E8M0 && !RawExponents) BiasExponents();
        // The kernels widen f16 scales assuming them finite (HalfWidening.Widen8Finite); a file whose scales hold
        // infinities or NaNs gets the scalar reference, which reads them as ggml's dequantizer does.
        (Kernel, Choice) = KernelPaths.Choose(kind, RawExponents, HasNonFiniteScales);
        // Where the scalar reference runs (no SIMD path on this CPU, or such scales), it reads the file's bytes.
        keepSource |= Kernel is null;
        if (keepSource) _source = ggml.ToArray();
    }

    /// <summary>The integer kernels run <paramref name="type"/>.</summary>
    public static bool Supports(TensorType type) => PackedKind.For(type) is not null;

    /// <summary>The integer kernels run tensors stored as <paramref name="format"/> (null: a plain ggml type).</summary>
    public static bool Supports(Quantization.TensorFormat? format, TensorType storedType) => PackedKind.For(format, storedType) is not null;

    /// <summary>Repacks a [rows, columns] matrix stored as <paramref name="format"/> (an AnyBit format or a ggml type's)
    /// or, with no format, as the ggml type <paramref name="storedType"/>.</summary>
    public static PackedMatrix Create(Quantization.TensorFormat? format, TensorType storedType, int rows, int columns, ReadOnlySpan<byte> bytes, bool keepSource = false) =>
        Create(format, storedType, rows, columns, bytes, keepSource, MatrixLayout.Auto);

    /// <summary>As <see cref="Create(Quantization.TensorFormat?, TensorType, int, int, ReadOnlySpan{byte}, bool)"/>, in the
    /// given layout (tests and benchmarks run both layouts of one format).</summary>
    public static PackedMatrix Create(Quantization.TensorFormat? format, TensorType storedType, int rows, int columns, ReadOnlySpan<byte> bytes, bool keepSource, MatrixLayout layout) =>
        new(PackedKind.For(format, storedType) ?? throw new AnyBitException($"no integer kernel for {format?.Name ?? storedType.ToString()}"), rows, columns, bytes, keepSource, layout);

    /// <summary>
    /// Repacks the ggml bytes of a [rows, columns] matrix of <paramref name="type"/>; with
    /// <paramref name="keepSource"/> a copy of those bytes is kept for the scalar reference kernel.
    /// </summary>
    public static PackedMatrix Create(TensorType type, int rows, int columns, ReadOnlySpan<byte> ggml, bool keepSource = false, MatrixLayout layout = MatrixLayout.Auto) =>
        new(PackedKind.For(type) ?? throw new AnyBitException($"no integer kernel for {type}"), rows, columns, ggml, keepSource, layout);

    internal PackedKind Kind { get; }
    /// <summary>The lookup-table layout this matrix is held in (bit-serial or ternary base-3) instead of the interleaved
    /// one, which is then not built (<see cref="BitSerialMatrix.Preferred"/>, <see cref="TernaryTableMatrix.Preferred"/>);
    /// null: interleaved.</summary>
    internal ILookupTableMatrix? Lookup { get; }
    /// <summary>The stored format's name ("Q4_K", "int3:g64:asym").</summary>
    public string FormatName => Kind.ToString();
    /// <summary>The SIMD kernel chosen for this CPU; null where only the scalar reference runs (or <see cref="Lookup"/>'s).</summary>
    internal GroupKernel? Kernel { get; }
    /// <summary>What multiplies this matrix (path, tiles, reason), decided once as it was loaded; reports print it.</summary>
    public KernelChoice Choice { get; }
    /// <summary><see cref="Choice"/> as the reports print it.</summary>
    public string KernelPath => Choice.ToString();
    public TensorType Type => Kind.Type;
    public int Rows { get; }
    public int Columns { get; }
    public int Groups { get; }
    public int SuperBlocks { get; }
    /// <summary>Block size the activations must be quantized with.</summary>
    public int ActivationBlock => Kind.SuperBlock;
    internal long GroupBytes { get; }
    /// <summary>Bytes of the repacked matrix (what a decode step reads).</summary>
    public long ByteLength { get; }
    /// <summary>
    /// Group g's first super-block; its next one is <see cref="BlockStride"/> bytes on (paired kinds interleave two
    /// groups' super-blocks, see <see cref="PackedKind.PairedGroups"/>).
    /// </summary>
    internal byte* Group(int g) => Kind.PairedGroups ? _data + (g & ~1) * GroupBytes + (g & 1) * Kind.SuperBlockBytes : _data + g * GroupBytes;
    internal int BlockStride => Kind.PairedGroups ? 2 * Kind.SuperBlockBytes : Kind.SuperBlockBytes;
    /// <summary>The ggml bytes, when the matrix was created with keepSource.</summary>
    internal ReadOnlySpan<byte> Source => _source ?? throw new InvalidOperationException("the matrix was packed without its source bytes");
    internal bool HasSource => _source is not null;
    /// <summary>Some block's f16 d or dmin is an infinity or a NaN (set while repacking).</summary>
    internal bool HasNonFiniteScales { get; private set; }

    /// <summary>
    /// MX kinds: some row's E8M0 byte e is not in shift + 1 .. 254 (an all-zero block's 0, NaN's 255, or a scale so
    /// small that 2^(e − 127 − shift) is subnormal), so the bytes stay as stored and the kernel decodes every range.
    /// Otherwise (every real model's weights) each byte is replaced by e − shift after repacking: the kernel then
    /// moves it into a float's exponent field (see PackedKernel.BiasedE8M0Scale). Set while repacking.
    /// </summary>
    internal bool RawExponents { get; private set; }

    /// <summary>Every E8M0 byte e becomes e − shift (padding rows' 127: a scale of 1 on codes of 0).</summary>
    private void BiasExponents()
    {
        int shift = Kind.E8M0Shift, codeBytes = Kind.CodeBytesPer32 * (Kind.SuperBlock / 32);
        for (int g = 0; g < Groups; g++)
            for (int s = 0; s < SuperBlocks; s++)
            {
                byte* p = Group(g) + (long)s * BlockStride + codeBytes;
                for (int r = 0; r < GroupRows; r++) p[r] = g * GroupRows + r < Rows ? (byte)(p[r] - shift) : (byte)127;
            }
    }

    private void Repack(byte* source)
    {
        // Groups are independent: repack them in parallel, which is most of a model's load time.
        Parallel.For(0, Groups, () => new RepackScratch(Kind.SuperBlock), (g, _, scratch) => { RepackGroup(g, source, scratch); return scratch; }, _ => { });
    }

    private sealed class RepackScratch(int sb)
    {
        public readonly byte[] Codes = new byte[GroupRows * sb];
        public readonly int[] Scales = new int[GroupRows * sb / 16], Mins = new int[GroupRows * sb / 16];
        public readonly float[] D = new float[GroupRows], DMin = new float[GroupRows];
    }

    private void RepackGroup(int g, byte* source, RepackScratch scratch)
    {
        var kind = Kind;
        int sb = kind.SuperBlock, blockBytes = kind.BlockBytes;
        var (codes, scales, mins, d, dmin) = (scratch.Codes, scratch.Scales, scratch.Mins, scratch.D, scratch.DMin);
            for (int s = 0; s < SuperBlocks; s++)
            {
                Array.Clear(codes); Array.Clear(scales); Array.Clear(mins); Array.Clear(d); Array.Clear(dmin);
                for (int r = 0; r < GroupRows; r++)
                {
                    int row = g * GroupRows + r;
                    if (row >= Rows) break;
                    var block = new DecodedBlock
                    {
                        Codes = codes.AsSpan(r * sb, sb), Scales16 = scales.AsSpan(r * sb / 16, sb / 16), Mins16 = mins.AsSpan(r * sb / 16, sb / 16),
                    };
                    long at = ((long)row * SuperBlocks + s) * blockBytes;
                    BlockDecoder.Decode(kind, new ReadOnlySpan<byte>(source + at, blockBytes), ref block);
                    d[r] = block.D; dmin[r] = block.DMin;
                    if (kind.HalfScale && !(float.IsFinite(block.D) && float.IsFinite(block.DMin))) HasNonFiniteScales = true;
                    if (kind.Layout == SubScaleLayout.ZeroPoint) mins[r * sb / 16] = block.Zero;
                    if (kind.E8M0)
                    {
                        mins[r * sb / 16] = block.Exponent;
                        if (block.Exponent <= kind.E8M0Shift || block.Exponent == 255) RawExponents = true;
                    }
                }
                WriteSuperBlock(Group(g) + (long)s * BlockStride, codes, scales, mins, d, dmin);
            }
    }

    private void WriteSuperBlock(byte* o, byte[] codes, int[] scales, int[] mins, float[] d, float[] dmin)
    {
        var kind = Kind;
        int sb = kind.SuperBlock, n16 = sb / 16;
        for (int j = 0; j < sb / 32; j++)
        {
            byte* v = o + j * kind.CodeBytesPer32;
            for (int r = 0; r < GroupRows; r++)
                for (int e = 0; e < 4; e++)
                {
                        byte Code(int chunk) => codes[r * sb + 32 * j + 4 * chunk + e];
                    int at = r * 4 + e;
                    switch (kind.CodeBits)
                    {
                        case 8:
                            for (int k = 0; k < 8; k++) v[32 * k + at] = Code(k);
                            break;
                        case 4:
                            for (int k = 0; k < 4; k++) v[32 * k + at] = (byte)(Code(k) | (Code(k + 4) << 4));
                            break;
                        case 2:
                            for (int k = 0; k < 2; k++) v[32 * k + at] = (byte)(Code(k) | (Code(k + 2) << 2) | (Code(k + 4) << 4) | (Code(k + 6) << 6));
                            break;
                        case 6: // a 4-bit plane (as case 4) of the low bits, then a 2-bit plane (as case 2) of the high bits
                            for (int k = 0; k < 4; k++) v[32 * k + at] = (byte)((Code(k) & 15) | ((Code(k + 4) & 15) << 4));
                            for (int k = 0; k < 2; k++)
                                v[128 + 32 * k + at] = (byte)((Code(k) >> 4) | ((Code(k + 2) >> 4) << 2) | ((Code(k + 4) >> 4) << 4) | ((Code(k + 6) >> 4) << 6));
                            break;
                        case 5: // a 4-bit plane (as case 4) of the low bits, then one byte whose bit c is chunk c's fifth bit
                            for (int k = 0; k < 4; k++) v[32 * k + at] = (byte)((Code(k) & 15) | ((Code(k + 4) & 15) << 4));
                            int fifth = 0;
                            for (int c = 0; c < 8; c++) fifth |= (Code(c) >> 4) << c;
                            v[128 + at] = (byte)fifth;
                            break;
                        case 3: // a 2-bit plane of the low bits, then one byte whose bit c is chunk c's third bit
                            for (int k = 0; k < 2; k++)
                                v[32 * k + at] = (byte)((Code(k) & 3) | ((Code(k + 2) & 3) << 2) | ((Code(k + 4) & 3) << 4) | ((Code(k + 6) & 3) << 6));
                            int bits = 0;
                            for (int c = 0; c < 8; c++) bits |= (Code(c) >> 2) << c;
                            v[64 + at] = (byte)bits;
                            break;
                    }
                }
        }
        byte* p = o + kind.CodeBytesPer32 * (sb / 32);
        if (kind.E8M0)
        {
            for (int r = 0; r < GroupRows; r++) p[r] = (byte)mins[r * n16];
            return;
        }
        if (kind.HalfScale)
        {
            // Exact: these kinds' d and dmin are the file's f16 values.
            for (int r = 0; r < GroupRows; r++) ((Half*)p)[r] = (Half)d[r];
            if (kind.HasMins) for (int r = 0; r < GroupRows; r++) ((Half*)p)[8 + r] = (Half)dmin[r];
        }
        else
        {
            for (int r = 0; r < GroupRows; r++) ((float*)p)[r] = d[r];
            if (kind.HasMins) for (int r = 0; r < GroupRows; r++) ((float*)p)[8 + r] = dmin[r];
        }
        p += PackedKind.ScaleBytesOf(kind.HalfScale) * (kind.HasMins ? 2 : 1);
        switch (kind.Layout)
        {
            // Sub-block pairs side by side per row (byte 2r + (h % 2) of pair h / 2): widened to int16 they are the
            // pairs one multiply-add takes against two Σx (mins, and Q6_K/Q3_K's offset) — see PackedKernel.Mins.
            case SubScaleLayout.ScaleMin32:
                for (int j = 0; j < 8; j++)
                    for (int r = 0; r < GroupRows; r++)
                    {
                        p[j * 8 + r] = (byte)scales[r * n16 + 2 * j];
                        p[64 + PairSlot(j, r)] = (byte)mins[r * n16 + 2 * j];
                    }
                break;
            case SubScaleLayout.PackedScaleMin16:
                for (int h = 0; h < 16; h++)
                    for (int r = 0; r < GroupRows; r++) p[PairSlot(h, r)] = (byte)(scales[r * n16 + h] | (mins[r * n16 + h] << 4));
                break;
            case SubScaleLayout.Signed16:
                for (int h = 0; h < 16; h++)
                    for (int r = 0; r < GroupRows; r++) p[PairSlot(h, r)] = (byte)(sbyte)scales[r * n16 + h];
                break;
            case SubScaleLayout.Signed32: // [8][rows], as ScaleMin32's scales; a kind of this layout repeats each in both halves
                for (int j = 0; j < 8; j++)
                    for (int r = 0; r < GroupRows; r++) p[j * 8 + r] = (byte)(sbyte)scales[r * n16 + 2 * j];
                break;
            case SubScaleLayout.ZeroPoint:
                for (int r = 0; r < GroupRows; r++) p[r] = (byte)mins[r * n16];
                break;
        }
    }

    /// <summary>Where row r's byte of sub-block h goes: pairs of sub-blocks, each row's two bytes adjacent.</summary>
    private static int PairSlot(int h, int r) => (h / 2) * 2 * GroupRows + 2 * r + h % 2;

    public void Dispose()
    {
        Lookup?.Dispose();
        if (_data == null) return;
        LargePageMemory.Free(_data);
        _data = null;
    }
}
