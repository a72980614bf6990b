using System.Buffers.Binary;

namespace AnyBit.Formats;

/// <summary>
/// Scalar reference dequantizers for ggml block types, written from the block layouts in ggml-common.h.
/// Each block holds <c>QK</c> weights and an fp16 scale <c>d</c> (little-endian).
/// </summary>
public static class GgmlBlocks
{
    public const int QK8_0 = 32, QK4_0 = 32;

    /// <summary>Q8_0: { fp16 d; int8 qs[32] } → x = d·q. 34 bytes per 32 weights (8.5 bits per weight).</summary>
    public static void DequantizeQ8_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int blocks = dst.Length / QK8_0;
        for (int b = 0; b < blocks; b++)
        {
            var block = src.Slice(b * 34, 34);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            for (int j = 0; j < QK8_0; j++) dst[b * QK8_0 + j] = d * (sbyte)block[2 + j];
        }
    }

    /// <summary>
    /// Q4_0: { fp16 d; uint8 qs[16] } → x = d·(q − 8). Byte j holds weight j in its low nibble and weight j+16 in its
    /// high nibble. 18 bytes per 32 weights (4.5 bits per weight).
    /// </summary>
    public static void DequantizeQ4_0(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int blocks = dst.Length / QK4_0;
        for (int b = 0; b < blocks; b++)
        {
            var block = src.Slice(b * 18, 18);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            for (int j = 0; j < 16; j++)
            {
                byte q = block[2 + j];
                dst[b * QK4_0 + j] = ((q & 0x0F) - 8) * d;
                dst[b * QK4_0 + j + 16] = ((q >> 4) - 8) * d;
            }
        }
    }
}
