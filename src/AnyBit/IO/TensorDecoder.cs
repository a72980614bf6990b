using AnyBit.Formats;

namespace AnyBit.IO;

/// <summary>Turns stored tensor bytes of any readable element type into float32, through the format table.</summary>
public static class TensorDecoder
{
    /// <summary>True when <see cref="ToFloat32(StoredTensor, Span{float})"/> can decode this type.</summary>
    public static bool CanDecode(TensorType type) => FormatTable.ByType(type) is not null;

    /// <summary>Decodes <paramref name="tensor"/> into <paramref name="destination"/> (length = element count).</summary>
    public static void ToFloat32(StoredTensor tensor, Span<float> destination)
    {
        if (destination.Length != tensor.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} floats, tensor {tensor.Name} has {tensor.ElementCount}");
        var format = FormatOf(tensor)
            ?? throw new AnyBitException($"{tensor.Name}: tensor type {TensorTypes.Traits(tensor.Type).Name} cannot be decoded yet");
        if (format.TensorTrailerBytes > 0)
        {
            // A per-tensor trailer (I2_S's scale) is read with the blocks, so the tensor is decoded in one call; its
            // bytes are a fraction of the float destination's, which already fits one span.
            format.Dequantize(tensor.File.Span(tensor.Offset, checked((int)tensor.ByteLength)), destination);
            return;
        }
        // Whole blocks at a time, about a million weights per step, so tensors above 2 GiB of bytes still work through spans.
        long blocksPerChunk = Math.Max(1, (1 << 20) / format.BlockSize);
        long totalBlocks = tensor.ElementCount / format.BlockSize;
        for (long b = 0; b < totalBlocks; b += blocksPerChunk)
        {
            int n = (int)Math.Min(blocksPerChunk, totalBlocks - b);
            var src = tensor.File.Span(tensor.Offset + b * format.BytesPerBlock, n * format.BytesPerBlock);
            format.Dequantize(src, destination.Slice((int)(b * format.BlockSize), n * format.BlockSize));
        }
    }

    /// <summary>The format that decodes <paramref name="tensor"/>: its AnyBit format, else its ggml type's row; null if none.</summary>
    public static Quantization.TensorFormat? FormatOf(StoredTensor tensor) =>
        tensor.Format is { GgmlType: null } custom ? custom : FormatTable.ByType(tensor.Type);

    /// <summary>Decodes a run of whole blocks of <paramref name="type"/>.</summary>
    public static void Decode(TensorType type, ReadOnlySpan<byte> src, Span<float> dst) =>
        (FormatTable.ByType(type) ?? throw new AnyBitException($"tensor type {type} cannot be decoded yet")).Dequantize(src, dst);
}
