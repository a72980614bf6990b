using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// f16 → f32 for 8 finite values at once, exactly. Written by hand because .NET 10 exposes no F16C (vcvtph2ps)
/// intrinsic: the kernels keep the 32-value legacy blocks' scales as the file's f16 and widen them per block.
/// </summary>
internal static unsafe class HalfWidening
{
    /// <summary>
    /// The 8 finite f16 values at <paramref name="p"/> as f32 in four instructions (a block epilogue runs this per
    /// 32 values of Q4_0, where a full-range widening's ten — infinities and NaNs kept — were a sixth of the decode
    /// kernel's instructions):
    /// sign-extended, the f16's bits shifted into an f32's places leave copies of the sign in bits 28-30, which the
    /// mask clears while keeping bit 31's; ×2¹¹² then rebiases normals and subnormals alike, exactly. An infinity or
    /// NaN would come out finite, so <see cref="PackedMatrix"/> gives matrices with such scales to the scalar
    /// reference instead of the kernels that call this.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen8Finite(byte* p)
    {
        var h = Avx2.ConvertToVector256Int32((short*)p);
        var bits = Vector256.ShiftLeft(h, 13) & Vector256.Create(unchecked((int)0x8FFFE000));
        return bits.AsSingle() * Vector256.Create(BitConverter.Int32BitsToSingle(0x77800000)); // × 2¹¹²
    }

    /// <summary><see cref="Widen8Finite"/> for 4 values in a 128-bit register (the scales of
    /// <see cref="PortableKernel{TK, TD}"/>'s 4-row halves; portable operations only, so ARM64 runs it too).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Widen4Finite(byte* p)
    {
        var h = Vector128.WidenLower(Vector128.CreateScalar(*(long*)p).AsInt16());
        var bits = Vector128.ShiftLeft(h, 13) & Vector128.Create(unchecked((int)0x8FFFE000));
        return bits.AsSingle() * Vector128.Create(BitConverter.Int32BitsToSingle(0x77800000)); // × 2¹¹²
    }

    /// <summary><see cref="Widen8Finite"/> for 16 values in a 512-bit register (F16 weights: <see cref="F16Elements"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen16Finite(short* p)
    {
        var h = Avx512F.IsSupported
            ? Avx512F.ConvertToVector512Int32(Vector256.Load(p))
            : Vector512.WidenLower(Vector512.Create(Vector256.Load(p), Vector256<short>.Zero));
        var bits = Vector512.ShiftLeft(h, 13) & Vector512.Create(unchecked((int)0x8FFFE000));
        return bits.AsSingle() * Vector512.Create(BitConverter.Int32BitsToSingle(0x77800000)); // × 2¹¹²
    }
}
