namespace AnyBit.IO;

/// <summary>
/// Element type of a stored tensor. Values below 1000 are ggml's type ids exactly as they appear in GGUF files;
/// values from 1000 are element types only safetensors has. I2_S is bitnet.cpp's id 36, which mainline ggml used for
/// the retired IQ4_NL_4_4: <see cref="GgufTypeIds"/> decides by the file's architecture which one a file means.
/// </summary>
public enum TensorType
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, I2_S = 36, MXFP4 = 39,

    F8_E4M3 = 1000, F8_E5M2 = 1001, U8 = 1002, U16 = 1003, U32 = 1004, U64 = 1005, Bool = 1006,
}

/// <summary>
/// Block geometry of a tensor type: how many elements share one block, how many bytes the block takes, and how many
/// bytes a tensor stores once after its blocks (<paramref name="TrailerBytes"/>: bitnet.cpp's I2_S keeps its
/// per-tensor scale there; 0 for every other type).
/// </summary>
public readonly record struct TensorTypeTraits(TensorType Type, string Name, int BlockSize, int BytesPerBlock, int TrailerBytes = 0)
{
    /// <summary>Storage bits per element, including the block's scales (not the per-tensor trailer).</summary>
    public double BitsPerWeight => 8.0 * BytesPerBlock / BlockSize;
}

/// <summary>
/// Sizes and names of stored types: the format table's rows (<see cref="Formats.FormatTable"/>), and the ggml ids
/// AnyBit knows the size of but cannot decode yet, so that files holding them open, list them and refuse them by name.
/// </summary>
public static class TensorTypes
{
    private const int QK_K = 256;

    /// <summary>ggml types AnyBit cannot decode yet: block geometry only (ggml-common.h). A type that gets a row in
    /// the format table leaves this list.</summary>
    private static readonly TensorTypeTraits[] Undecodable =
    [
        new(TensorType.Q8_1, "Q8_1", 32, 2 + 2 + 32),
        new(TensorType.Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2),
    ];

    private static readonly Dictionary<TensorType, TensorTypeTraits> Table = Enum.GetValues<TensorType>()
        .Select(t => Formats.FormatTable.ByType(t) is { } f ? new TensorTypeTraits(t, Formats.FormatTable.TypeName(t)!, f.BlockSize, f.BytesPerBlock, f.TensorTrailerBytes) : (TensorTypeTraits?)null)
        .OfType<TensorTypeTraits>()
        .Concat(Undecodable)
        .ToDictionary(t => t.Type);

    /// <summary>The ids AnyBit knows the size of but cannot decode (tests check none of them has a row).</summary>
    internal static IEnumerable<TensorType> UndecodableTypes => Undecodable.Select(t => t.Type);

    /// <summary>True when the type id is one AnyBit knows the size of.</summary>
    public static bool IsKnown(TensorType type) => Table.ContainsKey(type);

    /// <summary>The traits of a known type.</summary>
    public static TensorTypeTraits Traits(TensorType type) =>
        Table.TryGetValue(type, out var t) ? t : throw new AnyBitException($"unknown tensor type id {(int)type}");

    /// <summary>All known types.</summary>
    public static IEnumerable<TensorTypeTraits> All => Table.Values;

    /// <summary>
    /// Bytes taken by a tensor of <paramref name="elements"/> elements (its blocks and trailer), or -1 when the count
    /// is not a whole number of blocks or the size overflows.
    /// </summary>
    public static long ByteSize(TensorType type, long elements) => ByteSize(Traits(type), elements);

    /// <inheritdoc cref="ByteSize(TensorType, long)"/>
    public static long ByteSize(TensorTypeTraits t, long elements)
    {
        if (elements < 0 || elements % t.BlockSize != 0) return -1;
        long blocks = elements / t.BlockSize;
        if (blocks > (long.MaxValue - t.TrailerBytes) / t.BytesPerBlock) return -1;
        return blocks * t.BytesPerBlock + t.TrailerBytes;
    }

    /// <summary>Product of the dimensions, or -1 on overflow or a negative dimension.</summary>
    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) return -1;
            if (d != 0 && n > long.MaxValue / d) return -1;
            n *= d;
        }
        return n;
    }
}
