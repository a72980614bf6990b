using System.Runtime.Intrinsics;

namespace AnyBit.Kernels;

/// <summary>
/// bfloat16 → float32: the 16 bits become a float's upper half. Written by hand because System.Numerics.Tensors
/// converts Half but has no bfloat16 overload; the conversion is a widening and a shift, exact for every value.
/// </summary>
internal static unsafe class BFloat16Widening
{
    public static void Widen(ushort* src, Span<float> dst)
    {
        int n = dst.Length, i = 0;
        fixed (float* d = dst)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                Vector256.ShiftLeft(lo, 16).AsSingle().Store(d + i);
                Vector256.ShiftLeft(hi, 16).AsSingle().Store(d + i + 8);
            }
            for (; i < n; i++) d[i] = BitConverter.UInt32BitsToSingle((uint)src[i] << 16);
        }
    }
}
