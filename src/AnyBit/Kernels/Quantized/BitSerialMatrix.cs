using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The T-MAC layout of an AnyBit k-bit integer matrix (k = 1..4, groups of 32–256) or a ternary one: each code is cut into its k bit
/// planes, and the kernel (<see cref="BitSerialKernel"/>) looks groups of 4 one-bit weights up in a table of the 16
/// possible sums of 4 activations, then weighs the planes by 2^p. Rows are taken 32 at a time (a tile): per tile and
/// group, for each run of 16 columns and each plane, one 64-byte vector of 32 words — word l holds one row's 16 bits
/// of that plane, column c at bit c — so one <c>vpermw</c> per 4 columns gives all 32 rows' partial sums at once.
/// After the vectors: the 32 rows' scales as float32 (natural row order), then for asymmetric formats their zero
/// points as bytes; each tile-group is padded to a whole number of cache lines so that every code vector is one
/// aligned line. Memory holds k bits per weight where the interleaved layout holds 2 for int1.
/// </summary>
internal sealed unsafe class BitSerialMatrix : ILookupTableMatrix
{
    public const int TileRows = 32;
    int ILookupTableMatrix.TileRows => TileRows;
    private const int LineBytes = 64;

    private byte* _data;

    public BitSerialMatrix(PackedKind kind, int rows, int columns, byte* source)
    {
        if (!Supports(kind)) throw new ArgumentException($"no bit-serial layout for {kind}", nameof(kind));
        Kind = kind; Rows = rows; Columns = columns;
        Group = kind.SuperBlock; Blocks = columns / Group;
        if (kind.Int is { } f)
        {
            Planes = f.Bits;
            Signs = f.Symmetric && f.Bits == 1;
            Asymmetric = !f.Symmetric;
            SymmetricZero = Signs ? 1 : f.Symmetric ? 1 << (f.Bits - 1) : 0;
        }
        else
        {
            // Ternary codes 0, 1, 2 stand for −1, 0, +1: two planes and the zero 1 (TQ2_0's offset −1 per Σx).
            Planes = 2;
            SymmetricZero = -kind.Offset;
        }
        Tiles = (rows + TileRows - 1) / TileRows;
        CodeBytes = Group / 16 * Planes * LineBytes;
        BlockBytes = (CodeBytes + TileRows * sizeof(float) + (Asymmetric ? TileRows : 0) + LineBytes - 1) / LineBytes * LineBytes;
        ByteLength = (long)Tiles * Blocks * BlockBytes;
        _data = (byte*)LargePageMemory.Allocate((nuint)ByteLength);
        NativeMemory.Clear(_data, (nuint)ByteLength);
        Parallel.For(0, Tiles, t => RepackTile(t, source));
    }

    /// <summary>The kinds this layout holds: int1–int4 with groups and the ternary TQ2_0/TQ1_0, on CPUs with AVX-512
    /// BW (<c>vpermw</c>) and DQ.</summary>
    public static bool Supports(PackedKind kind) =>
        Avx512BW.IsSupported && Avx512DQ.IsSupported && (kind.Int is { Bits: <= 4 } || kind.Ternary);

    /// <summary>
    /// Whether a matrix of <paramref name="kind"/> is held in this layout rather than the interleaved one, as
    /// measured side by side (bench LookupTableBenchmarks; see docs/performance.md#ternary). Where the int8 kernel runs
    /// its AVX2 path (an AVX-512 CPU without AVX-VNNI), int1, int2 and the ternary kinds: faster there, decode and
    /// prefill; int3 and int4 decode slower and stay interleaved. Where AVX-VNNI runs the int8 kernel, int1 takes it
    /// everywhere (it reads fewer bytes: 1 bit per code, not 2), and the ternary kinds on AMD, where their decode and
    /// prefill were faster than on the VNNI kernel; int2 and int3 lost decoding there as whole models and stay
    /// interleaved. Against Intel's VNNI nothing was measured, so Intel keeps the VNNI kernel for the ternary kinds.
    /// </summary>
    public static bool Preferred(PackedKind kind)
    {
        if (!Supports(kind)) return false;
        if (!AvxVnni.IsSupported) return (kind.Int?.Bits ?? 2) <= 2;
        return kind.Int is { Bits: 1 } || kind.Int is null && !CpuVendor.IsIntel;
    }

    public PackedKind Kind { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Group { get; }
    public int Blocks { get; }
    public int Planes { get; }
    public int Tiles { get; }
    /// <summary>Symmetric 1-bit codes are ±1 stored as code' = 2·bit with zero 1: one plane, weighed 2.</summary>
    public bool Signs { get; }
    public bool Asymmetric { get; }
    /// <summary>The zero point of a symmetric format (every block's); 0 for asymmetric ones, which store theirs.</summary>
    public int SymmetricZero { get; }
    public int CodeBytes { get; }
    /// <summary>Bytes of one tile's group (codes, scales, zero points, padding).</summary>
    public int BlockBytes { get; }
    public long ByteLength { get; }

    /// <summary>The weight of plane <paramref name="p"/> in a code.</summary>
    public int PlaneWeight(int p) => Signs ? 2 : 1 << p;

    public string Path => "avx-512 bit-serial lookup tables (T-MAC)";
    public int TableLength => BitSerialKernel.TableLength(Columns);
    public void BuildTables(sbyte* x, short* sums16, short* tables, int* totals) => BitSerialKernel.BuildTables(x, sums16, Columns, Group, tables, totals);
    private BitSerialKernel.TileKernel? _kernel;
    public void MultiplyTile(int tile, short* tables, int* totals, float* dx, float* y, int rows) =>
        (_kernel ??= BitSerialKernel.For(this))(this, Tile(tile), tables, totals, dx, y, rows);

    public byte* Tile(int t) => _data + (long)t * Blocks * BlockBytes;

    /// <summary>
    /// The row of tile-relative lane <paramref name="lane"/> (0..31) of a code vector. The kernel combines two planes'
    /// int16 sums with vpunpcklwd/vpunpckhwd, which take words 0–3 and 4–7 of each 128-bit lane; storing rows in this
    /// order makes the low result rows 0–15 and the high one rows 16–31, in order.
    /// </summary>
    public static int RowOfLane(int lane) => (lane & 4) == 0 ? (lane >> 3) * 4 + (lane & 3) : 16 + (lane >> 3) * 4 + (lane & 3);

    private void RepackTile(int t, byte* source)
    {
        int g = Group;
        var codes = new byte[TileRows * g];
        var d = new float[TileRows];
        var zero = new int[TileRows];
        for (int s = 0; s < Blocks; s++)
        {
            Array.Clear(codes); Array.Clear(d); Array.Clear(zero);
            BlockDecoder.DecodeRows(Kind, source, Rows, Blocks, s, t * TileRows, codes, d, zero);
            byte* o = Tile(t) + (long)s * BlockBytes;
            for (int w = 0; w < g / 16; w++)
                for (int p = 0; p < Planes; p++)
                {
                    ushort* v = (ushort*)(o + (w * Planes + p) * LineBytes);
                    int bit = Signs ? 1 : p;
                    for (int lane = 0; lane < TileRows; lane++)
                    {
                        int r = RowOfLane(lane), word = 0;
                        for (int c = 0; c < 16; c++) word |= ((codes[r * g + 16 * w + c] >> bit) & 1) << c;
                        v[lane] = (ushort)word;
                    }
                }
            float* scale = (float*)(o + CodeBytes);
            for (int r = 0; r < TileRows; r++) scale[r] = d[r];
            if (Asymmetric)
                for (int r = 0; r < TileRows; r++) o[CodeBytes + TileRows * sizeof(float) + r] = (byte)zero[r];
        }
    }

    public void Dispose()
    {
        if (_data == null) return;
        LargePageMemory.Free(_data);
        _data = null;
    }
}
