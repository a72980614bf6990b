namespace AnyBit.IO;

/// <summary>
/// Element type of a stored tensor. Values below 1000 are ggml's type ids exactly as they appear in GGUF files;
/// values from 1000 are element types only safetensors has.
/// </summary>
public enum TensorType
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,

    F8_E4M3 = 1000, F8_E5M2 = 1001, U8 = 1002, U16 = 1003, U32 = 1004, U64 = 1005, Bool = 1006,
}

/// <summary>Block geometry of a tensor type: how many elements share one block and how many bytes the block takes.</summary>
public readonly record struct TensorTypeTraits(TensorType Type, string Name, int BlockSize, int BytesPerBlock)
{
    /// <summary>Storage bits per element, including the block's scales.</summary>
    public double BitsPerWeight => 8.0 * BytesPerBlock / BlockSize;
}

/// <summary>The size table for every type (ggml's <c>type_traits</c>, read from ggml.c's block struct definitions).</summary>
public static class TensorTypes
{
    private const int QK_K = 256;

    private static readonly Dictionary<TensorType, TensorTypeTraits> Table = new TensorTypeTraits[]
    {
        new(TensorType.F32, "F32", 1, 4),
        new(TensorType.F16, "F16", 1, 2),
        new(TensorType.BF16, "BF16", 1, 2),
        new(TensorType.F64, "F64", 1, 8),
        new(TensorType.I8, "I8", 1, 1),
        new(TensorType.I16, "I16", 1, 2),
        new(TensorType.I32, "I32", 1, 4),
        new(TensorType.I64, "I64", 1, 8),
        new(TensorType.U8, "U8", 1, 1),
        new(TensorType.U16, "U16", 1, 2),
        new(TensorType.U32, "U32", 1, 4),
        new(TensorType.U64, "U64", 1, 8),
        new(TensorType.Bool, "BOOL", 1, 1),
        new(TensorType.F8_E4M3, "F8_E4M3", 1, 1),
        new(TensorType.F8_E5M2, "F8_E5M2", 1, 1),
        new(TensorType.Q4_0, "Q4_0", 32, 2 + 16),           // fp16 d, 32 nibbles
        new(TensorType.Q4_1, "Q4_1", 32, 2 + 2 + 16),       // fp16 d, fp16 m, 32 nibbles
        new(TensorType.Q5_0, "Q5_0", 32, 2 + 4 + 16),       // fp16 d, 32 high bits, 32 nibbles
        new(TensorType.Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16),
        new(TensorType.Q8_0, "Q8_0", 32, 2 + 32),
        new(TensorType.Q8_1, "Q8_1", 32, 2 + 2 + 32),
        new(TensorType.Q2_K, "Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2),
        new(TensorType.Q3_K, "Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2),
        new(TensorType.Q4_K, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2),
        new(TensorType.Q5_K, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),
        new(TensorType.Q6_K, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2),
        new(TensorType.Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2),
        new(TensorType.IQ2_XXS, "IQ2_XXS", QK_K, 2 + QK_K / 4),
        new(TensorType.IQ2_XS, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
        new(TensorType.IQ3_XXS, "IQ3_XXS", QK_K, 2 + 3 * QK_K / 8),
        new(TensorType.IQ1_S, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
        new(TensorType.IQ4_NL, "IQ4_NL", 32, 2 + 16),
        new(TensorType.IQ3_S, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64),
        new(TensorType.IQ2_S, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32),
        new(TensorType.IQ4_XS, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),
        new(TensorType.IQ1_M, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
        new(TensorType.TQ1_0, "TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2),
        new(TensorType.TQ2_0, "TQ2_0", QK_K, QK_K / 4 + 2),
        new(TensorType.MXFP4, "MXFP4", 32, 1 + 16),
    }.ToDictionary(t => t.Type);

    /// <summary>True when the type id is one AnyBit knows the size of.</summary>
    public static bool IsKnown(TensorType type) => Table.ContainsKey(type);

    /// <summary>The traits of a known type.</summary>
    public static TensorTypeTraits Traits(TensorType type) =>
        Table.TryGetValue(type, out var t) ? t : throw new AnyBitException($"unknown tensor type id {(int)type}");

    /// <summary>All known types.</summary>
    public static IEnumerable<TensorTypeTraits> All => Table.Values;

    /// <summary>
    /// Bytes taken by <paramref name="elements"/> elements, or -1 when the count is not a whole number of blocks
    /// or the size overflows.
    /// </summary>
    public static long ByteSize(TensorType type, long elements)
    {
        var t = Traits(type);
        if (elements < 0 || elements % t.BlockSize != 0) return -1;
        long blocks = elements / t.BlockSize;
        if (blocks > long.MaxValue / t.BytesPerBlock) return -1;
        return blocks * t.BytesPerBlock;
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
