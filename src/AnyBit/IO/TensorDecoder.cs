using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using AnyBit.Formats;

namespace AnyBit.IO;

/// <summary>Turns stored tensor bytes of any readable element type into float32.</summary>
public static class TensorDecoder
{
    /// <summary>True when <see cref="ToFloat32(StoredTensor, Span{float})"/> can decode this type.</summary>
    public static bool CanDecode(TensorType type) => type switch
    {
        TensorType.F32 or TensorType.F16 or TensorType.BF16 or TensorType.F64 or TensorType.F8_E4M3 or TensorType.F8_E5M2
            or TensorType.I8 or TensorType.U8 or TensorType.I16 or TensorType.I32 or TensorType.I64
            or TensorType.U16 or TensorType.U32 or TensorType.U64 or TensorType.Bool
            or TensorType.Q8_0 or TensorType.Q4_0 or TensorType.Q4_1 or TensorType.Q5_0 or TensorType.Q5_1
            or TensorType.Q2_K or TensorType.Q3_K or TensorType.Q4_K or TensorType.Q5_K or TensorType.Q6_K
            or TensorType.TQ1_0 or TensorType.TQ2_0 or TensorType.IQ4_NL or TensorType.MXFP4 => true,
        _ => false,
    };

    /// <summary>Decodes <paramref name="tensor"/> into <paramref name="destination"/> (length = element count).</summary>
    public static void ToFloat32(StoredTensor tensor, Span<float> destination)
    {
        if (destination.Length != tensor.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} floats, tensor {tensor.Name} has {tensor.ElementCount}");
        if (tensor.Format is { GgmlType: null } format)
        {
            DecodeCustom(tensor, format, destination);
            return;
        }
        if (!CanDecode(tensor.Type))
            throw new AnyBitException($"{tensor.Name}: tensor type {TensorTypes.Traits(tensor.Type).Name} cannot be decoded yet");
        // Decode in chunks so tensors above 2 GiB of bytes still work through spans.
        const int chunkElements = 1 << 20;
        var traits = TensorTypes.Traits(tensor.Type);
        long done = 0;
        while (done < tensor.ElementCount)
        {
            int n = (int)Math.Min(chunkElements, tensor.ElementCount - done);
            long byteOffset = done / traits.BlockSize * traits.BytesPerBlock;
            int byteCount = (int)(n / traits.BlockSize * (long)traits.BytesPerBlock);
            var src = tensor.File.Span(tensor.Offset + byteOffset, byteCount);
            Decode(tensor.Type, src, destination.Slice((int)done, n));
            done += n;
        }
    }

    private static void DecodeCustom(StoredTensor tensor, Quantization.TensorFormat format, Span<float> destination)
    {
        // Whole blocks at a time, about a million weights per step.
        long blocksPerChunk = Math.Max(1, (1 << 20) / format.BlockSize);
        long totalBlocks = tensor.ElementCount / format.BlockSize;
        for (long b = 0; b < totalBlocks; b += blocksPerChunk)
        {
            int n = (int)Math.Min(blocksPerChunk, totalBlocks - b);
            var src = tensor.File.Span(tensor.Offset + b * format.BytesPerBlock, n * format.BytesPerBlock);
            format.Dequantize(src, destination.Slice((int)(b * format.BlockSize), n * format.BlockSize));
        }
    }

    /// <summary>Decodes a run of whole blocks of <paramref name="type"/>.</summary>
    public static void Decode(TensorType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case TensorType.F32:
                MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                break;
            case TensorType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);
                break;
            case TensorType.BF16:
                BFloat16.ToSingle(MemoryMarshal.Cast<byte, ushort>(src), dst);
                break;
            case TensorType.F64:
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
                break;
            case TensorType.F8_E4M3:
                for (int i = 0; i < dst.Length; i++) dst[i] = Float8.E4M3FnToSingle(src[i]);
                break;
            case TensorType.F8_E5M2:
                for (int i = 0; i < dst.Length; i++) dst[i] = Float8.E5M2ToSingle(src[i]);
                break;
            case TensorType.I8:
                for (int i = 0; i < dst.Length; i++) dst[i] = (sbyte)src[i];
                break;
            case TensorType.U8:
            case TensorType.Bool:
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i];
                break;
            case TensorType.U16:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]);
                break;
            case TensorType.U32:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadUInt32LittleEndian(src[(4 * i)..]);
                break;
            case TensorType.U64:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadUInt64LittleEndian(src[(8 * i)..]);
                break;
            case TensorType.I16:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt16LittleEndian(src[(2 * i)..]);
                break;
            case TensorType.I32:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(4 * i)..]);
                break;
            case TensorType.I64:
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt64LittleEndian(src[(8 * i)..]);
                break;
            case TensorType.Q8_0: GgmlLegacyQuants.DequantizeQ8_0(src, dst); break;
            case TensorType.Q4_0: GgmlLegacyQuants.DequantizeQ4_0(src, dst); break;
            case TensorType.Q4_1: GgmlLegacyQuants.DequantizeQ4_1(src, dst); break;
            case TensorType.Q5_0: GgmlLegacyQuants.DequantizeQ5_0(src, dst); break;
            case TensorType.Q5_1: GgmlLegacyQuants.DequantizeQ5_1(src, dst); break;
            case TensorType.IQ4_NL: GgmlLegacyQuants.DequantizeIq4Nl(src, dst); break;
            case TensorType.MXFP4: GgmlLegacyQuants.DequantizeMxfp4(src, dst); break;
            case TensorType.Q2_K: GgmlKQuants.DequantizeQ2_K(src, dst); break;
            case TensorType.Q3_K: GgmlKQuants.DequantizeQ3_K(src, dst); break;
            case TensorType.Q4_K: GgmlKQuants.DequantizeQ4_K(src, dst); break;
            case TensorType.Q5_K: GgmlKQuants.DequantizeQ5_K(src, dst); break;
            case TensorType.Q6_K: GgmlKQuants.DequantizeQ6_K(src, dst); break;
            case TensorType.TQ1_0: GgmlTernaryQuants.DequantizeTq1_0(src, dst); break;
            case TensorType.TQ2_0: GgmlTernaryQuants.DequantizeTq2_0(src, dst); break;
            default:
                throw new AnyBitException($"tensor type {type} cannot be decoded yet");
        }
    }
}
