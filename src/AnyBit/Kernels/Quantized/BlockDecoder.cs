namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Reads stored blocks into <see cref="DecodedBlock"/>s (integer codes in value order and the block's scales) through
/// each format's own <see cref="Quantization.TensorFormat.DecodeBlock"/>: for the repacking of the interleaved and
/// lookup-table layouts and for the scalar reference kernel.
/// </summary>
internal static unsafe class BlockDecoder
{
    /// <summary>
    /// Block <paramref name="block"/> of each of the rows <paramref name="first"/>.. of a matrix of ggml bytes
    /// (<paramref name="blocksPerRow"/> blocks a row), as the lookup layouts repack a tile: row r's codes into
    /// codes[r·SuperBlock..], its scale into d[r] and zero point into zero[r]; rows from <paramref name="rows"/> on
    /// are left as the caller filled them (padding).
    /// </summary>
    public static void DecodeRows(PackedKind kind, byte* source, int rows, int blocksPerRow, int block, int first, Span<byte> codes, Span<float> d, Span<int> zero)
    {
        int sb = kind.SuperBlock, blockBytes = kind.BlockBytes;
        Span<int> scales = stackalloc int[sb / 16], mins = stackalloc int[sb / 16];
        for (int r = 0; r < d.Length && first + r < rows; r++)
        {
            var o = new DecodedBlock { Codes = codes.Slice(r * sb, sb), Scales16 = scales, Mins16 = mins };
            Decode(kind, new ReadOnlySpan<byte>(source + ((long)(first + r) * blocksPerRow + block) * blockBytes, blockBytes), ref o);
            d[r] = o.D;
            if (!zero.IsEmpty) zero[r] = o.Zero;
        }
    }

    /// <summary>Block <paramref name="b"/> of <paramref name="kind"/>'s format, with the scales and mins it lacks
    /// set to 1 and 0 (<see cref="Quantization.TensorFormat.DecodeBlock"/> reads the layout).</summary>
    public static void Decode(PackedKind kind, ReadOnlySpan<byte> b, ref DecodedBlock o) => Decode(kind.Format, b, ref o);

    /// <summary>Block <paramref name="b"/> of <paramref name="format"/>, as <see cref="Decode(PackedKind, ReadOnlySpan{byte}, ref DecodedBlock)"/>.</summary>
    public static void Decode(Quantization.TensorFormat format, ReadOnlySpan<byte> b, ref DecodedBlock o)
    {
        o.Scales16.Fill(1);
        o.Mins16.Clear();
        o.DMin = 0;
        o.Zero = 0;
        format.DecodeBlock(b, ref o);
    }
}
