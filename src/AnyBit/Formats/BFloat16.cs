using System.Runtime.Intrinsics;

namespace AnyBit.Formats;

/// <summary>bfloat16: the upper 16 bits of an IEEE float32. Encoding rounds to nearest even; NaN stays NaN.</summary>
public static class BFloat16
{
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Round-to-nearest-even conversion, as PyTorch and ml_dtypes do; NaNs are kept quiet NaNs.</summary>
    public static ushort FromSingle(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((u >> 16) | 0x0040);
        uint rounding = 0x7FFF + ((u >> 16) & 1);
        return (ushort)((u + rounding) >> 16);
    }

    /// <summary>Widens a run of bfloat16 values (a shift, vectorised where the CPU allows).</summary>
    public static void ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref ushort s = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(src);
            ref float d = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(dst);
            for (; i + 16 <= src.Length; i += 16)
            {
                var v = Vector256.LoadUnsafe(ref s, (nuint)i);
                var (lo, hi) = Vector256.Widen(v);
                Vector256.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector256.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + 8));
            }
        }
        for (; i < src.Length; i++) dst[i] = ToSingle(src[i]);
    }
}
