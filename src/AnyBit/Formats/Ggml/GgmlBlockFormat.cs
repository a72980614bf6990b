using System.Runtime.CompilerServices;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// A ggml block type whose blocks are <typeparamref name="TBlock"/> (the layout, as ggml-common.h's struct) and run on
/// the integer kernels as <typeparamref name="TKernel"/>. Every block type reads its bytes in one place,
/// <see cref="TensorFormat.DecodeBlock"/>, into integer codes and scales; the float dequantizer and the kernels' repacking both
/// start from it. A weight is d·sc·(code + offset) − dmin·m, evaluated as ggml's dequantizers do:
/// (d·sc)·(code + offset) − dmin·m, each product rounded to float, no fused multiply-add.
/// </summary>
internal abstract class GgmlBlockFormat<TBlock, TKernel> : GgmlFormat
    where TBlock : unmanaged
    where TKernel : struct, IKindTraits
{
    private PackedKind? _kind;

    /// <summary>Weights per block (32, or QK_K = 256 for the K-quants and ternary types).</summary>
    public abstract override int BlockSize { get; }

    public sealed override int BytesPerBlock => Unsafe.SizeOf<TBlock>();

    /// <summary>False for a type whose integer form the kernels cannot run yet: it runs on the float path.</summary>
    protected virtual bool HasKernel => true;

    internal sealed override PackedKind? Kind => HasKernel ? _kind ??= PackedKind.Of<TKernel>(this) : null;

    public sealed override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => BlockDequantizer.Dequantize<TKernel>(this, src, dst);

    /// <summary>The code levels the dequantizer uses (<see cref="IFixedScaleRounding.Levels"/> for the scalar types that declare it).</summary>
    public float[] Levels => BlockDequantizer.Levels<TKernel>.Values;

    /// <summary>A block's steps, shifts and codes as the dequantizer reads them (<see cref="IFixedScaleRounding.ReadBlock"/>).</summary>
    public void ReadBlock(ReadOnlySpan<byte> block, Span<float> step16, Span<float> shift16, Span<byte> codes) =>
        BlockDequantizer.ReadBlock(this, block, step16, shift16, codes);
}
