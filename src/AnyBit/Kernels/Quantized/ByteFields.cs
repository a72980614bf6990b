using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Moves a bit field of every byte to another position and clears the rest: the unpacking step of every packed code
/// vector. x86 has no byte shift, so without GFNI it is a 16-bit shift and a mask (two operations); with GFNI one
/// affine transform over GF(2) does both, its 8×8 bit matrix picking the field's bits — one vector operation fewer
/// per code vector in kernels whose throughput is counted in vector operations.
/// </summary>
internal static class ByteFields
{
    /// <summary>
    /// Bits [<paramref name="from"/>, from + width) of each byte, moved to start at bit <paramref name="to"/>.
    /// All arguments must be constants at the call site (the matrix then folds to a constant).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Extract(Vector256<byte> v, int from, int width, int to)
    {
        if (Gfni.V256.IsSupported) return Gfni.V256.GaloisFieldAffineTransform(v, Vector256.Create(Matrix(from, width, to)).AsByte(), 0);
        return ExtractByShift(v, from, width, to);
    }

    /// <summary><see cref="Extract(Vector256{byte}, int, int, int)"/> without GFNI: a 16-bit shift (bits crossing from the neighbour byte are masked off).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> ExtractByShift(Vector256<byte> v, int from, int width, int to)
    {
        var moved = from >= to ? Vector256.ShiftRightLogical(v.AsUInt16(), from - to) : Vector256.ShiftLeft(v.AsUInt16(), to - from);
        return moved.AsByte() & Vector256.Create((byte)(((1 << width) - 1) << to));
    }

    /// <summary><see cref="Extract(Vector256{byte}, int, int, int)"/> for 128-bit vectors (<see cref="PortableKernel{TK, TD}"/>): byte shifts, which
    /// ARM64 has (on x86 the runtime emulates them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Extract(Vector128<byte> v, int from, int width, int to) =>
        Vector128.ShiftLeft(Vector128.ShiftRightLogical(v, from) & Vector128.Create((byte)((1 << width) - 1)), to);

    /// <summary>
    /// The affine transform's matrix: result bit i is the parity of (byte 7 − i of the matrix) AND the input byte,
    /// so row to + k holds the single input bit from + k. Written without a loop so that it folds to a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Matrix(int from, int width, int to) => width switch
    {
        1 => Row(from, to, 0),
        2 => Row(from, to, 0) | Row(from, to, 1),
        4 => Row(from, to, 0) | Row(from, to, 1) | Row(from, to, 2) | Row(from, to, 3),
        _ => throw new ArgumentOutOfRangeException(nameof(width)),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Row(int from, int to, int k) => (1UL << (from + k)) << (8 * (7 - to - k));
}
