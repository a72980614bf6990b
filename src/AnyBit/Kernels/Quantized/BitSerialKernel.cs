using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The T-MAC bit-serial lookup-table GEMV on a <see cref="BitSerialMatrix"/>: per token, a table of the 16 sums
/// Σᵢ bᵢ·xᵢ of every 4 int8 activations (<see cref="BuildTables"/>); per 32-row tile, one <c>vpermw</c> per plane
/// and 4 columns looks up all 32 rows' partial sums (int16: |entry| ≤ 4·127, and a group of 256 adds 64 of them,
/// ≤ 32512), and per group the planes are weighed by 2^p in one <c>vpmaddwd</c> per pair of planes. The group's
/// integer sum Σ code·x − z·Σx is then exactly the scalar reference's, and it meets the scale in the same fused
/// multiply-add, so the result is bit-identical to <see cref="ReferenceKernel"/>.
/// </summary>
internal static unsafe class BitSerialKernel
{
    /// <summary>int16 entries per table: 16 sums, repeated (see <see cref="BuildTables"/>).</summary>
    public const int TableEntries = 16;
    private const int PrefetchDistance = 8192;

    /// <summary>shorts of tables per token of <paramref name="columns"/> activations.</summary>
    public static int TableLength(int columns) => columns / 4 * TableEntries;

    // Byte pairs (2e, 2e+1) of entry e: bits 0 and 1 of e, and bits 2 and 3, for vpmaddubsw against the activation
    // pairs (x0, x1) and (x2, x3): entry e = Σ_i bit_i(e)·x_i.
    private static readonly Vector256<sbyte> s_bits01 = EntryBits(0), s_bits23 = EntryBits(2);

    private static Vector256<sbyte> EntryBits(int low)
    {
        var bytes = new sbyte[32];
        for (int e = 0; e < 16; e++) { bytes[2 * e] = (sbyte)(e >> low & 1); bytes[2 * e + 1] = (sbyte)(e >> (low + 1) & 1); }
        return Vector256.Create(bytes);
    }

    /// <summary>
    /// One token's tables: for every 4 columns, the 16 int16 sums of their activation codes selected by the bits of
    /// the entry's index (32 bytes; the kernel broadcasts them to both halves of a 512-bit register, because
    /// <c>vpermw</c> reads 5 index bits and the fifth is the next column's bit), and per group Σx.
    /// </summary>
    public static void BuildTables(sbyte* x, short* sums16, int columns, int group, short* tables, int* totals)
    {
        // Two byte multiply-adds per 4 columns (bits unsigned, activations signed, pairs of at most 2·127: exact), on
        // broadcasts loaded from memory: the sixteen sums as masks of four scalar broadcasts, on one thread while the
        // other waits, showed in the decode profile (see docs/performance.md#ternary).
        var bits01 = s_bits01; var bits23 = s_bits23;
        for (int j = 0; j < columns / 4; j++)
        {
            var x01 = Vector256.Create(*(ushort*)(x + 4 * j)).AsByte();
            var x23 = Vector256.Create(*(ushort*)(x + 4 * j + 2)).AsByte();
            var t = Avx2.MultiplyAddAdjacent(bits01.AsByte(), x01.AsSByte()) + Avx2.MultiplyAddAdjacent(bits23.AsByte(), x23.AsSByte());
            t.Store(tables + j * TableEntries);
        }
        for (int b = 0; b < columns / group; b++)
        {
            int total = 0;
            for (int h = 0; h < group / 16; h++) total += sums16[b * (group / 16) + h];
            totals[b] = total;
        }
    }

    /// <summary>y[r] = Σ_k W[r, k]·x[k] for the <paramref name="rows"/> (≤ 32) rows of tile <paramref name="tile"/>, one token.</summary>
    public delegate void TileKernel(BitSerialMatrix m, byte* tile, short* tables, int* totals, float* dx, float* y, int rows);

    /// <summary>The kernel for <paramref name="m"/>'s planes and group size.</summary>
    public static TileKernel For(BitSerialMatrix m) => (m.Planes, m.Group) switch
    {
        (1, 32) => Tile<C1, C32>, (1, 64) => Tile<C1, C64>, (1, 128) => Tile<C1, C128>, (1, 256) => Tile<C1, C256>,
        (2, 32) => Tile<C2, C32>, (2, 64) => Tile<C2, C64>, (2, 128) => Tile<C2, C128>, (2, 256) => Tile<C2, C256>,
        (3, 32) => Tile<C3, C32>, (3, 64) => Tile<C3, C64>, (3, 128) => Tile<C3, C128>, (3, 256) => Tile<C3, C256>,
        (4, 32) => Tile<C4, C32>, (4, 64) => Tile<C4, C64>, (4, 128) => Tile<C4, C128>, (4, 256) => Tile<C4, C256>,
        _ => throw new NotSupportedException($"no bit-serial kernel for {m.Planes} planes, groups of {m.Group}"),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TP, TG>(BitSerialMatrix m, byte* tile, short* tables, int* totals, float* dx, float* y, int rows)
        where TP : struct, IConstant where TG : struct, IConstant
    {
        int planes = TP.Value, group = TG.Value, blockBytes = m.BlockBytes, codeBytes = m.CodeBytes;
        bool asymmetric = m.Asymmetric, intoL1 = PrefetchLevel.IntoL1;
        int zero = m.SymmetricZero;
        // Plane weights as int16 pairs for vpmaddwd: (w0, w1) and (w2, w3), a missing plane weighed 0.
        var w01 = Vector512.Create(m.PlaneWeight(0) | (planes > 1 ? m.PlaneWeight(1) << 16 : 0)).AsInt16();
        var w23 = Vector512.Create(planes > 2 ? m.PlaneWeight(2) | (planes > 3 ? m.PlaneWeight(3) << 16 : 0) : 0).AsInt16();
        var lo = Vector512<float>.Zero;
        var hi = Vector512<float>.Zero;
        int blocks = m.Blocks;
        for (int s = 0; s < blocks; s++)
        {
            byte* b = tile + (long)s * blockBytes;
            // Every line of the group a distance ahead (codes, scales and zero points: a line left to the hardware
            // prefetcher stalled the scales' loads on memory and halved the bandwidth).
            for (int line = 0; line < blockBytes; line += 64)
                if (intoL1) Sse.Prefetch0(b + PrefetchDistance + line); else Sse.Prefetch1(b + PrefetchDistance + line);
            short* t = tables + s * (group / 4) * TableEntries;
            Vector512<short> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int w = 0; w < group / 16; w++)
            {
                short* tw = t + 4 * w * TableEntries;
                var t0 = Table(tw);
                var t1 = Table(tw + TableEntries);
                var t2 = Table(tw + 2 * TableEntries);
                var t3 = Table(tw + 3 * TableEntries);
                byte* v = b + w * planes * 64;
                a0 += Lookup(v, t0, t1, t2, t3);
                if (planes > 1) a1 += Lookup(v + 64, t0, t1, t2, t3);
                if (planes > 2) a2 += Lookup(v + 128, t0, t1, t2, t3);
                if (planes > 3) a3 += Lookup(v + 192, t0, t1, t2, t3);
            }
            // Rows 0–15 from the low words of each 128-bit lane, 16–31 from the high ones (BitSerialMatrix.RowOfLane).
            var dLo = Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackLow(a0, a1), w01);
            var dHi = Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackHigh(a0, a1), w01);
            if (planes > 2)
            {
                dLo += Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackLow(a2, a3), w23);
                dHi += Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackHigh(a2, a3), w23);
            }
            int total = totals[s];
            if (asymmetric)
            {
                // z (zero-extended to 32 bits, high word 0) times Σx in the low word: exactly z·Σx, |Σx| ≤ 256·127.
                byte* z = b + codeBytes + BitSerialMatrix.TileRows * sizeof(float);
                var sum = Vector512.Create(total).AsInt16();
                dLo -= Avx512BW.MultiplyAddAdjacent(Avx512F.ConvertToVector512Int32(Vector128.Load(z)).AsInt16(), sum);
                dHi -= Avx512BW.MultiplyAddAdjacent(Avx512F.ConvertToVector512Int32(Vector128.Load(z + 16)).AsInt16(), sum);
            }
            else
            {
                var zs = Vector512.Create(zero * total);
                dLo -= zs; dHi -= zs;
            }
            float* d = (float*)(b + codeBytes);
            var sx = Vector512.Create(dx[s]);
            lo = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dLo), Vector512.Load(d) * sx, lo);
            hi = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dHi), Vector512.Load(d + 16) * sx, hi);
        }
        if (rows == BitSerialMatrix.TileRows)
        {
            lo.Store(y);
            hi.Store(y + 16);
            return;
        }
        float* tmp = stackalloc float[BitSerialMatrix.TileRows];
        lo.Store(tmp);
        hi.Store(tmp + 16);
        for (int r = 0; r < rows; r++) y[r] = tmp[r];
    }

    /// <summary>
    /// A 16-entry table in both halves of a register, in one load (<c>vbroadcasti32x8</c>). Not
    /// Avx512F.BroadcastVector256ToVector512(long*): the .NET 10.0.12 JIT emits its <c>vbroadcasti64x4</c> so that a
    /// constant displacement is read at twice its size (disassembly "[rsi+0x20]", data from +0x40; found by this
    /// kernel's tests), and Vector512.Create(half, half) costs two inserts and a stack round trip.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Table(short* p) => Avx512DQ.BroadcastVector256ToVector512((int*)p).AsInt16();

    /// <summary>One plane's 16 columns of 32 rows: four lookups, one per 4 columns (the word shifted to its nibble).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Lookup(byte* v, Vector512<short> t0, Vector512<short> t1, Vector512<short> t2, Vector512<short> t3)
    {
        var c = Vector512.Load((short*)v);
        return Avx512BW.PermuteVar32x16(t0, c) + Avx512BW.PermuteVar32x16(t1, Avx512BW.ShiftRightLogical(c, 4))
             + Avx512BW.PermuteVar32x16(t2, Avx512BW.ShiftRightLogical(c, 8)) + Avx512BW.PermuteVar32x16(t3, Avx512BW.ShiftRightLogical(c, 12));
    }
}
