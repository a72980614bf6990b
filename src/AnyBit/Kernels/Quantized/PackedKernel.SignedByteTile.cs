using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

// Byte codes on AVX2's sign-trick product (Q8_0, mxint8), four or eight tokens × 8 rows: prompt processing's tile
// (SignedBytesTokens in PackedKernel.Tiles.cs says when).
internal static unsafe partial class PackedKernel<TK, TD>
{
    /// <summary>
    /// <typeparamref name="TN"/> (4 or 8) tokens × one group of <see cref="SignedBytesTokens"/> codes. Chunk by chunk,
    /// the code vector is made signed and its magnitudes taken once (<see cref="Avx2SignedDot"/>'s w = u − 128 and |w|)
    /// and met by every token's activations with their signs flipped where w is negative: vpmaddubsw(|w|, sign(x, w)),
    /// whose pairs (at most 2·128·127) are widened at once, into each token's isum. Then isum·(d·dx) into the row's
    /// sum — <see cref="Tile{TN}"/>'s integers and float operations, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SignedByteTile<TN>(byte* w, int superBlocks, sbyte* x, float* xScales, float* y, int rows, int yStride)
        where TN : struct, IConstant
    {
        int blockStride = BlockStride, e8m0Shift = TK.E8M0Shift;
        nint xStride = superBlocks * 32, scaleStride = superBlocks * sizeof(float);
        byte* scales = (byte*)xScales;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int s = 0; s < superBlocks; s++, w += blockStride, x += 32, scales += sizeof(float))
        {
            if (Sse.IsSupported) // (x86 only; a constant for the JIT) as Tile: the first tokens read the group from memory
            {
                Prefetch(w + PrefetchDistance);
                Prefetch(w + PrefetchDistance + 64);
                Prefetch(w + PrefetchDistance + 128);
                Prefetch(w + PrefetchDistance + 192);
            }
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default, i4 = default, i5 = default, i6 = default, i7 = default;
            for (int k = 0; k < 8; k++)
            {
                var c = (Vector256.Load(w + 32 * k) ^ Vector256.Create((byte)0x80)).AsSByte();
                var m = Avx2.Abs(c);
                i0 = SignedBytes(i0, m, c, x, k);
                i1 = SignedBytes(i1, m, c, x + xStride, k);
                i2 = SignedBytes(i2, m, c, x + 2 * xStride, k);
                i3 = SignedBytes(i3, m, c, x + 3 * xStride, k);
                if (TN.Value == 8)
                {
                    i4 = SignedBytes(i4, m, c, x + 4 * xStride, k);
                    i5 = SignedBytes(i5, m, c, x + 5 * xStride, k);
                    i6 = SignedBytes(i6, m, c, x + 6 * xStride, k);
                    i7 = SignedBytes(i7, m, c, x + 7 * xStride, k);
                }
            }
            var d = BlockScale(w + 256, e8m0Shift);
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), d * Vector256.Create(*(float*)scales), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), d * Vector256.Create(*(float*)(scales + scaleStride)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i2), d * Vector256.Create(*(float*)(scales + 2 * scaleStride)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i3), d * Vector256.Create(*(float*)(scales + 3 * scaleStride)), a3);
            if (TN.Value == 8)
            {
                a4 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i4), d * Vector256.Create(*(float*)(scales + 4 * scaleStride)), a4);
                a5 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i5), d * Vector256.Create(*(float*)(scales + 5 * scaleStride)), a5);
                a6 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i6), d * Vector256.Create(*(float*)(scales + 6 * scaleStride)), a6);
                a7 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i7), d * Vector256.Create(*(float*)(scales + 7 * scaleStride)), a7);
            }
        }
        Store(a0, y, rows);
        Store(a1, y + yStride, rows);
        Store(a2, y + 2 * yStride, rows);
        Store(a3, y + 3 * yStride, rows);
        if (TN.Value == 8)
        {
            Store(a4, y + 4 * yStride, rows);
            Store(a5, y + 5 * yStride, rows);
            Store(a6, y + 6 * yStride, rows);
            Store(a7, y + 7 * yStride, rows);
        }
    }

    /// <summary>isum + chunk k of one token against the signed codes <paramref name="c"/> (magnitudes <paramref name="m"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SignedBytes(Vector256<int> isum, Vector256<byte> m, Vector256<sbyte> c, sbyte* x, int k) =>
        isum + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(m, Avx2.Sign(X(x, k), c)), Vector256<short>.One);
}
