namespace AnyBit.Formats;

/// <summary>
/// Packs codes of any width 1..16 bits into bytes as one little-endian bit stream: code i occupies bits
/// [i·w, (i+1)·w) counting from bit 0 of byte 0, least significant bit first. A group of n codes takes
/// ⌈n·w/8⌉ bytes; the unused high bits of the last byte are zero. This layout is the same for every width, so
/// 3-, 5-, 6- and 7-bit codes need no special cases (and 4- or 8-bit codes land on nibble/byte boundaries).
/// </summary>
public static class BitPacking
{
    public static int PackedBytes(int count, int bits) => (count * bits + 7) / 8;

    public static void Pack(ReadOnlySpan<int> codes, int bits, Span<byte> dst)
    {
        dst[..PackedBytes(codes.Length, bits)].Clear();
        long bit = 0;
        uint mask = (1u << bits) - 1;
        foreach (int code in codes)
        {
            uint v = (uint)code & mask;
            int byteIndex = (int)(bit >> 3), shift = (int)(bit & 7);
            uint shifted = v << shift;
            dst[byteIndex] |= (byte)shifted;
            if (shift + bits > 8) dst[byteIndex + 1] |= (byte)(shifted >> 8);
            if (shift + bits > 16) dst[byteIndex + 2] |= (byte)(shifted >> 16);
            bit += bits;
        }
    }

    public static void Unpack(ReadOnlySpan<byte> src, int bits, Span<int> codes)
    {
        long bit = 0;
        uint mask = (1u << bits) - 1;
        for (int i = 0; i < codes.Length; i++)
        {
            int byteIndex = (int)(bit >> 3), shift = (int)(bit & 7);
            uint v = src[byteIndex];
            if (shift + bits > 8) v |= (uint)src[byteIndex + 1] << 8;
            if (shift + bits > 16) v |= (uint)src[byteIndex + 2] << 16;
            codes[i] = (int)((v >> shift) & mask);
            bit += bits;
        }
    }
}
