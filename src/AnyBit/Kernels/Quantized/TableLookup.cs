using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Byte tables of 16 or 64 entries looked up 32 indices at a time. Each table is kept in unmanaged memory (made once,
/// never freed: a handful of books) in the forms the lookups want: four 16-byte quarters repeated in both lanes
/// (vpshufb reads the low 4 index bits within a lane; bits 4 and 5 then pick a quarter by blends), then two 32-byte
/// halves (vpermi2b reads all 6 bits in one instruction where AVX-512 VBMI exists). A wide book's high table follows
/// at <see cref="HighOffset"/>. The kernel reads the address once per call, so no class initialisation or static
/// field access sits in its inner loop.
/// </summary>
internal static unsafe class TableLookup
{
    private const int FormBytes = 4 * 32 + 2 * 32;
    public const int HighOffset = FormBytes;

    public static nint Create(byte[] low, byte[]? high)
    {
        var p = (byte*)NativeMemory.AlignedAlloc(2 * FormBytes, 64);
        Write(p, low);
        Write(p + HighOffset, high ?? new byte[low.Length]);
        return (nint)p;
    }

    private static void Write(byte* p, byte[] table)
    {
        var t = new byte[64];
        table.CopyTo(t, 0);
        for (int q = 0; q < 4; q++)
            for (int lane = 0; lane < 2; lane++)
                for (int i = 0; i < 16; i++) p[32 * q + 16 * lane + i] = t[16 * q + i];
        for (int i = 0; i < 64; i++) p[128 + i] = t[i];
    }

    /// <summary>
    /// The vectors <see cref="Lookup"/> needs for <paramref name="indexBits"/>-bit indices, loaded once per kernel call
    /// so that they stay in registers: one for 16 entries; the two halves with VBMI; else the four quarters.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load(byte* t, int indexBits, bool vbmi, out Vector256<byte> t0, out Vector256<byte> t1, out Vector256<byte> t2, out Vector256<byte> t3)
    {
        t1 = t2 = t3 = default;
        if (indexBits == 4) t0 = Vector256.Load(t);
        else if (vbmi) { t0 = Vector256.Load(t + 128); t1 = Vector256.Load(t + 160); }
        else { t0 = Vector256.Load(t); t1 = Vector256.Load(t + 32); t2 = Vector256.Load(t + 64); t3 = Vector256.Load(t + 96); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Lookup(Vector256<byte> index, int indexBits, bool vbmi, Vector256<byte> t0, Vector256<byte> t1, Vector256<byte> t2, Vector256<byte> t3)
    {
        if (indexBits == 4) return Avx2.Shuffle(t0, index);
        if (vbmi) return Avx512Vbmi.VL.PermuteVar32x8x2(t0, index, t1);
        // vpblendvb selects on each byte's top bit: index bit 4 moved there picks the odd quarter, bit 5 the upper half.
        var bit4 = Vector256.ShiftLeft(index.AsUInt16(), 3).AsByte();
        var bit5 = Vector256.ShiftLeft(index.AsUInt16(), 2).AsByte();
        var low = Avx2.BlendVariable(Avx2.Shuffle(t0, index), Avx2.Shuffle(t1, index), bit4);
        var high = Avx2.BlendVariable(Avx2.Shuffle(t2, index), Avx2.Shuffle(t3, index), bit4);
        return Avx2.BlendVariable(low, high, bit5);
    }
}
