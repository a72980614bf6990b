using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// 4-bit indices into tables of small entries (E2M1 books: MXFP4, mxfp4_e2m1, e2m1 groups), one token × 16 rows in
// 512-bit registers (SmallTable512 in PackedKernel.Tiles.cs says when).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// One token × two groups of <see cref="SmallTable512"/> indices: per block Σ entry·x of chunks 0-3 and of
    /// chunks 4-7 as int16 pairs, widened and added with offset·Σx, then isum·(d·dx) — <see cref="Decode16{TS}"/>'s
    /// integers and float operations, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Decode16SmallTable512(byte* w, int superBlocks, sbyte* x, float* xScales, short* xSums16, float* y, int rows)
    {
        byte* tables = (byte*)TK.Tables;
        int codeBytes = 128;
        int blockBytes = BlockBytes, blockStride = 2 * blockBytes; // the two groups' blocks alternate (PairedGroups)
        int e8m0Shift = TK.E8M0Shift;
        var entries = Vector256.Load(tables); // TableLookup's 16-entry form: the entries in both 128-bit lanes
        var table = Vector512.Create(entries, entries);
        var low = Vector512.Create((byte)0x0F);
        var f = Vector512<float>.Zero; // rows 0-15
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += 32, xSums16 += 2)
        {
            byte* v = w + blockBytes;
            if (Sse.IsSupported) PrefetchPair(w + PrefetchDistance, blockStride); // see TileX2
            Vector512<short> pl = default, ph = default;
            Lookups(w, v, x, 0, table, low, ref pl, ref ph);
            Lookups(w, v, x, 1, table, low, ref pl, ref ph);
            Lookups(w, v, x, 2, table, low, ref pl, ref ph);
            Lookups(w, v, x, 3, table, low, ref pl, ref ph);
            var isum = Avx512BW.MultiplyAddAdjacent(pl, Vector512<short>.One) + Avx512BW.MultiplyAddAdjacent(ph, Vector512<short>.One)
                + OffsetTerm512(xSums16);
            var d = Vector512.Create(BlockScale(w + codeBytes, e8m0Shift), BlockScale(v + codeBytes, e8m0Shift));
            f = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(isum), d * Vector512.Create(xScales[s]), f);
        }
        Store16(f, y, rows);
    }

    /// <summary>Vector k of both groups' index planes: chunk k's entries against its activations into
    /// <paramref name="pl"/>, chunk k+4's into <paramref name="ph"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Lookups(byte* w, byte* v, sbyte* x, int k, Vector512<byte> table, Vector512<byte> low, ref Vector512<short> pl, ref Vector512<short> ph)
    {
        var codes = Vector512.Create(Vector256.Load(w + 32 * k), Vector256.Load(v + 32 * k));
        var lo = Avx512BW.Shuffle(table, codes & low);
        var hi = Avx512BW.Shuffle(table, Vector512.ShiftRightLogical(codes.AsUInt16(), 4).AsByte() & low);
        pl += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 4 * k)).AsSByte());
        ph += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 4 * k + 16)).AsSByte());
    }
}
