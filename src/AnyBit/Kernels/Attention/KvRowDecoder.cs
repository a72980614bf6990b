using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Kernels.Attention;

/// <summary>
/// Vectorized decoding of KV cache rows in llama.cpp's cache types (f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
/// iq4_nl) into float32 tiles, bit for bit what each format's reference <see cref="TensorFormat.Dequantize"/> gives
/// (tested). Attention decodes every cached position once per decode step, so the reference decoders' per-block
/// scalar loops were most of a long-context step; other cache types keep the reference decoder.
/// </summary>
/// <remarks>
/// Each block's f16 scales are widened by the scalar conversion (one per 32 values), so infinite or NaN scales decode
/// as the reference does; f16 rows check each 16 values for an all-ones exponent and take the scalar conversion there
/// (elsewhere <see cref="HalfWidening.Widen8Finite"/>, exact for finite values).
/// x = d·q (+ m) is a product then a sum, as the reference computes it, never a fused multiply-add.
/// </remarks>
internal static unsafe class KvRowDecoder
{
    /// <summary>Decodes <c>values</c> values (whole blocks) from <c>src</c> into <c>dst</c>.</summary>
    public delegate void Decoder(byte* src, float* dst, int values);

    /// <summary>The vectorized decoder of rows in <paramref name="format"/>, or null where there is none (the reference decodes).</summary>
    public static Decoder? For(TensorFormat format)
    {
        if (!Avx2.IsSupported) return null;
        return format.GgmlType switch
        {
            TensorType.F16 => F16,
            TensorType.BF16 => BF16,
            TensorType.Q8_0 => Q8_0,
            TensorType.Q4_0 => Q4_0,
            TensorType.Q4_1 => Q4_1,
            TensorType.Q5_0 => Q5_0,
            TensorType.Q5_1 => Q5_1,
            TensorType.IQ4_NL => IQ4_NL,
            _ => null,
        };
    }

    private const int QK = 32;

    private static void F16(byte* src, float* dst, int values)
    {
        var h = (ushort*)src;
        var exponent = Vector256.Create((ushort)0x7C00);
        int i = 0;
        for (; i + 16 <= values; i += 16)
        {
            var raw = Vector256.Load(h + i);
            // Any infinity or NaN among the 16 (an all-ones exponent): the exact scalar conversion.
            if (Vector256.EqualsAny(raw & exponent, exponent))
            {
                for (int j = i; j < i + 16; j++) dst[j] = (float)BitConverter.UInt16BitsToHalf(h[j]);
                continue;
            }
            HalfWidening.Widen8Finite((byte*)(h + i)).Store(dst + i);
            HalfWidening.Widen8Finite((byte*)(h + i + 8)).Store(dst + i + 8);
        }
        for (; i < values; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(h[i]);
    }

    private static void BF16(byte* src, float* dst, int values)
    {
        var h = (ushort*)src;
        int i = 0;
        for (; i + 8 <= values; i += 8)
            Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(h + i), 16).AsSingle().Store(dst + i);
        for (; i < values; i++) dst[i] = BitConverter.Int32BitsToSingle(h[i] << 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(byte* p) => (float)BitConverter.UInt16BitsToHalf(*(ushort*)p);

    private static void Q8_0(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 34, dst += QK)
        {
            var d = Vector256.Create(Scale(src));
            var q = (sbyte*)(src + 2);
            for (int k = 0; k < QK; k += 8)
                (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + k)) * d).Store(dst + k);
        }
    }

    /// <summary>The 16 codes of a legacy block's nibbles mapped through <paramref name="table"/> (16 signed bytes):
    /// low nibbles are values 0–15, high nibbles 16–31 (ggml's layout), widened to int32 by eights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles(byte* qs, Vector128<sbyte> table, out Vector128<sbyte> low, out Vector128<sbyte> high)
    {
        var bytes = Vector128.Load(qs);
        var mask = Vector128.Create((byte)0x0F);
        low = Ssse3.Shuffle(table, (bytes & mask).AsSByte());
        high = Ssse3.Shuffle(table, (Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask).AsSByte());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen(Vector128<sbyte> v, int half) =>
        Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(half == 0 ? v : Sse2.ShiftRightLogical128BitLane(v, 8)));

    private static readonly Vector128<sbyte> Signed4 = Vector128.Create((sbyte)-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    private static readonly Vector128<sbyte> Unsigned4 = Vector128.Create((sbyte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    private static readonly Vector128<sbyte> NonLinear4 = Vector128.Create(Formats.Ggml.NonLinear4.Values);

    /// <summary>A block of 32 nibble codes through a table, × d (+ m when <paramref name="hasMin"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NibbleBlock(byte* qs, Vector128<sbyte> table, float d, float m, bool hasMin, float* dst)
    {
        Nibbles(qs, table, out var low, out var high);
        var vd = Vector256.Create(d);
        var x0 = Widen(low, 0) * vd; var x1 = Widen(low, 1) * vd; var x2 = Widen(high, 0) * vd; var x3 = Widen(high, 1) * vd;
        if (hasMin)
        {
            var vm = Vector256.Create(m);
            x0 += vm; x1 += vm; x2 += vm; x3 += vm;
        }
        x0.Store(dst); x1.Store(dst + 8); x2.Store(dst + 16); x3.Store(dst + 24);
    }

    private static void Q4_0(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 18, dst += QK) NibbleBlock(src + 2, Signed4, Scale(src), 0, false, dst);
    }

    private static void Q4_1(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 20, dst += QK) NibbleBlock(src + 4, Unsigned4, Scale(src), Scale(src + 2), true, dst);
    }

    private static void IQ4_NL(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 18, dst += QK) NibbleBlock(src + 2, NonLinear4, Scale(src), 0, false, dst);
    }

    /// <summary>A block of 32 five-bit codes (low nibbles in qs, fifth bits in the little-endian u32 qh, bit j for
    /// value j), minus <paramref name="offset"/>, × d (+ m).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FiveBitBlock(byte* qh, byte* qs, int offset, float d, float m, bool hasMin, float* dst)
    {
        var high = Vector256.Create(*(uint*)qh);
        var vd = Vector256.Create(d);
        var vm = Vector256.Create(m);
        var lanes = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7);
        for (int k = 0; k < QK; k += 8)
        {
            // Value k + i: nibble i of bytes (k mod 16)…, low half for k < 16.
            var bytes = Avx2.ConvertToVector256Int32(qs + (k & 15)).AsUInt32();
            var nib = k < 16 ? bytes & Vector256.Create(0xFu) : Vector256.ShiftRightLogical(bytes, 4);
            var fifth = Avx2.ShiftRightLogicalVariable(high, lanes + Vector256.Create((uint)k)) & Vector256.Create(1u);
            var q = (nib | Vector256.ShiftLeft(fifth, 4)).AsInt32() - Vector256.Create(offset);
            var x = Avx.ConvertToVector256Single(q) * vd;
            if (hasMin) x += vm;
            x.Store(dst + k);
        }
    }

    private static void Q5_0(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 22, dst += QK) FiveBitBlock(src + 2, src + 6, 16, Scale(src), 0, false, dst);
    }

    private static void Q5_1(byte* src, float* dst, int values)
    {
        for (int b = 0; b < values / QK; b++, src += 24, dst += QK) FiveBitBlock(src + 4, src + 8, 0, Scale(src), Scale(src + 2), true, dst);
    }
}
