using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A TQ2_0/TQ1_0 matrix held for a table kernel in the style of bitnet.cpp's TL2: every 3 ternary weights of a row
/// are one base-3 index (t₀ + 3t₁ + 9t₂ with tᵢ = weight + 1, 27 values in 5 bits), three indices to a 16-bit
/// word (9 weights in 15 bits, 1.78 bits per weight). Per token and 3 columns, a table of the 27 sums Σᵢ wᵢ·xᵢ
/// (one 512-bit register of int16, whose 32 entries <c>vpermw</c> indexes with exactly 5 bits); per 32-row tile
/// and 9 columns, three lookups give all 32 rows' partial sums — a third of a lookup per weight, where the
/// bit-serial kernel takes half. Tiles are 64 rows, two halves of 32 (one vector of words each); a 256-value block
/// is 29 words per half (261 columns, the last 5 padding with activation 0), then the 64 rows' scales as float32:
/// 62 cache lines per tile and block.
/// </summary>
internal sealed unsafe class TernaryTableMatrix : ILookupTableMatrix
{
    /// <summary>Two halves of 32 rows share each table load (tables are 21 bytes per column and come from L2: with
    /// one half per load the kernel ran slower than the bit-serial one even on weights in cache).</summary>
    public const int TileRows = 64;
    int ILookupTableMatrix.TileRows => TileRows;
    private const int Half = 32;
    private const int Group = 256, Words = 29, Triples = 3 * Words, LineBytes = 64;
    private const int HalfBytes = Words * LineBytes, CodeBytes = 2 * HalfBytes, BlockBytes = CodeBytes + TileRows * sizeof(float);
    private const int TableEntries = 32;
    private const int PrefetchDistance = 8192;

    private byte* _data;

    public TernaryTableMatrix(PackedKind kind, int rows, int columns, byte* source)
    {
        if (!Supports(kind)) throw new ArgumentException($"no ternary table layout for {kind}", nameof(kind));
        Kind = kind; Rows = rows; Columns = columns;
        Blocks = columns / Group;
        Tiles = (rows + TileRows - 1) / TileRows;
        ByteLength = (long)Tiles * Blocks * BlockBytes;
        _data = (byte*)LargePageMemory.Allocate((nuint)ByteLength);
        NativeMemory.Clear(_data, (nuint)ByteLength);
        Parallel.For(0, Tiles, t => RepackTile(t, source));
    }

    public static bool Supports(PackedKind kind) =>
        Avx512BW.IsSupported && kind.Ternary;

    /// <summary>
    /// Whether a ternary matrix of <paramref name="columns"/> columns takes this layout by default, as measured per
    /// shape (bench LookupTableBenchmarks; see docs/performance.md#ternary) where the int8 kernel runs its AVX2 path:
    /// it beat both other layouts on rows of 2048 columns and lost to the bit-serial one on wider rows, whose tables
    /// (21 bytes per column) are read again for every tile. So rows of up to 2048 columns (the widest measured to
    /// win); wider ones go to the bit-serial layout. Where AVX-VNNI runs the int8 kernel it is not chosen: there it
    /// was the slowest of the three.
    /// </summary>
    public static bool Preferred(PackedKind kind, int columns) => Supports(kind) && !AvxVnni.IsSupported && columns <= 2048;

    public PackedKind Kind { get; }
    public int Rows { get; }
    public int Columns { get; }
    public int Tiles { get; }
    public int Blocks { get; }
    public long ByteLength { get; }
    public string Path => "avx-512 ternary base-3 lookup tables (bitnet.cpp TL2 style)";
    public int TableLength => Blocks * Triples * TableEntries;

    private byte* Tile(int t) => _data + (long)t * Blocks * BlockBytes;

    private void RepackTile(int t, byte* source)
    {
        var codes = new byte[TileRows * Group];
        var d = new float[TileRows];
        for (int s = 0; s < Blocks; s++)
        {
            codes.AsSpan().Fill(1); // padding rows: weight 0
            Array.Clear(d);
            BlockDecoder.DecodeRows(Kind, source, Rows, Blocks, s, t * TileRows, codes, d, default);
            byte* o = Tile(t) + (long)s * BlockBytes;
            for (int w = 0; w < 2 * Words; w++)
            {
                ushort* v = (ushort*)(o + w * LineBytes); // half w / Words, word w % Words
                for (int lane = 0; lane < Half; lane++)
                {
                    int r = w / Words * Half + BitSerialMatrix.RowOfLane(lane), word = 0;
                    for (int k = 0; k < 3; k++)
                    {
                        int index = 0;
                        for (int i = 2; i >= 0; i--)
                        {
                            int c = 9 * (w % Words) + 3 * k + i;
                            index = 3 * index + (c < Group ? codes[r * Group + c] : 1);
                        }
                        word |= index << (5 * k);
                    }
                    v[lane] = (ushort)word;
                }
            }
            float* scale = (float*)(o + CodeBytes);
            for (int r = 0; r < TileRows; r++) scale[r] = d[r];
        }
    }

    // Byte pairs (2e, 2e+1) of entry e < 27: the ternary weights (digit − 1) of columns 0 and 1 of index e, and of
    // column 2 (its pair byte 0); entries 27–31 are 0. Against the biased activations (x + 128, unsigned) of the same columns,
    // vpmaddubsw gives Σ w·(x + 128) per entry: minus 128·Σ w (s_bias) leaves Σ w·x.
    private static readonly Vector512<sbyte> s_weights01 = EntryWeights(0, 1), s_weights2 = EntryWeights(2, -1);
    private static readonly Vector512<short> s_bias = EntryBias();

    private static int Weight(int e, int i) => e < 27 ? (i == 0 ? e % 3 : i == 1 ? e / 3 % 3 : e / 9) - 1 : 0;

    private static Vector512<sbyte> EntryWeights(int first, int second)
    {
        var bytes = new sbyte[64];
        for (int e = 0; e < 32; e++)
        {
            bytes[2 * e] = (sbyte)Weight(e, first);
            bytes[2 * e + 1] = second < 0 ? (sbyte)0 : (sbyte)Weight(e, second);
        }
        return Vector512.Create(bytes);
    }

    private static Vector512<short> EntryBias()
    {
        var lanes = new short[32];
        for (int e = 0; e < 32; e++) lanes[e] = (short)(128 * (Weight(e, 0) + Weight(e, 1) + Weight(e, 2)));
        return Vector512.Create(lanes);
    }

    /// <summary>
    /// One token's tables: per block and triple j of columns, the 27 sums Σᵢ wᵢ·x₃ⱼ₊ᵢ over the weights of each index
    /// (columns past the block, the last triple's padding, count as x = 0). Two byte multiply-adds per triple, on
    /// broadcasts loaded from a biased copy of the block: the int16 products of three scalar broadcasts, on one
    /// thread while the other waits, showed in the decode profile (see docs/performance.md#ternary). Pairs are at most
    /// 2·255: exact.
    /// </summary>
    public void BuildTables(sbyte* x, short* sums16, short* tables, int* totals)
    {
        byte* biased = stackalloc byte[Group + 64];
        var w01 = s_weights01; var w2 = s_weights2; var bias = s_bias;
        var flip = Vector512.Create((byte)0x80);
        flip.Store(biased + Group); // padding columns: x = 0
        for (int s = 0; s < Blocks; s++)
        {
            byte* xs = (byte*)(x + s * Group);
            for (int i = 0; i < Group; i += 64) (Vector512.Load(xs + i) ^ flip).Store(biased + i);
            short* ts = tables + s * Triples * TableEntries;
            for (int j = 0; j < Triples; j++)
            {
                var x01 = Vector512.Create(*(ushort*)(biased + 3 * j)).AsByte();
                var x2 = Vector512.Create(*(ushort*)(biased + 3 * j + 2)).AsByte();
                var t = Avx512BW.MultiplyAddAdjacent(x01, w01) + Avx512BW.MultiplyAddAdjacent(x2, w2) - bias;
                t.Store(ts + j * TableEntries);
            }
        }
    }

    /// <summary>
    /// Two int16 accumulators (even and odd words): one would hold 87 lookups of up to 3·127, past int16. Combined
    /// per block in int32 by one <c>vpmaddwd</c> of each half against ones; Σ w·x is TQ2_0's Σ code·x − Σx exactly,
    /// so the float step is the reference's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MultiplyTile(int tileIndex, short* tables, int* totals, float* dx, float* y, int rows)
    {
        byte* tile = Tile(tileIndex);
        bool intoL1 = PrefetchLevel.IntoL1;
        var ones = Vector512.Create((short)1);
        Vector512<float> r0 = default, r1 = default, r2 = default, r3 = default;
        for (int s = 0; s < Blocks; s++)
        {
            byte* b = tile + (long)s * BlockBytes;
            for (int line = 0; line < BlockBytes; line += LineBytes)
                if (intoL1) Sse.Prefetch0(b + PrefetchDistance + line); else Sse.Prefetch1(b + PrefetchDistance + line);
            short* t = tables + s * Triples * TableEntries;
            Vector512<short> evenA = default, oddA = default, evenB = default, oddB = default;
            for (int w = 0; w < Words; w++)
            {
                short* tw = t + 3 * w * TableEntries;
                var t0 = Vector512.Load(tw);
                var t1 = Vector512.Load(tw + TableEntries);
                var t2 = Vector512.Load(tw + 2 * TableEntries);
                var a = Lookup(b + w * LineBytes, t0, t1, t2);
                var c = Lookup(b + HalfBytes + w * LineBytes, t0, t1, t2);
                if ((w & 1) == 0) { evenA += a; evenB += c; } else { oddA += a; oddB += c; }
            }
            // Rows are stored in BitSerialMatrix.RowOfLane's order: the low unpack is rows 0–15, the high one 16–31.
            float* d = (float*)(b + CodeBytes);
            var sx = Vector512.Create(dx[s]);
            r0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackLow(evenA, oddA), ones)), Vector512.Load(d) * sx, r0);
            r1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackHigh(evenA, oddA), ones)), Vector512.Load(d + 16) * sx, r1);
            r2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackLow(evenB, oddB), ones)), Vector512.Load(d + 32) * sx, r2);
            r3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackHigh(evenB, oddB), ones)), Vector512.Load(d + 48) * sx, r3);
        }
        float* tmp = stackalloc float[TileRows];
        r0.Store(tmp); r1.Store(tmp + 16); r2.Store(tmp + 32); r3.Store(tmp + 48);
        for (int r = 0; r < rows; r++) y[r] = tmp[r];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Lookup(byte* v, Vector512<short> t0, Vector512<short> t1, Vector512<short> t2)
    {
        var c = Vector512.Load((short*)v);
        return Avx512BW.PermuteVar32x16(t0, c) + Avx512BW.PermuteVar32x16(t1, Avx512BW.ShiftRightLogical(c, 5))
             + Avx512BW.PermuteVar32x16(t2, Avx512BW.ShiftRightLogical(c, 10));
    }

    public void Dispose()
    {
        if (_data == null) return;
        LargePageMemory.Free(_data);
        _data = null;
    }
}
