using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Inference;

/// <summary>
/// How one side of the KV cache (keys or values) is stored: a format of the format registry (any spec
/// <c>quantize --format</c> takes: <c>f32</c>, <c>f16</c>, <c>bf16</c>, <c>q8_0</c>, <c>q4_0</c>, <c>iq4_nl</c>,
/// <c>int4:g32</c>, <c>e2m1:g32</c>, <c>mxfp4_e2m1</c>, <c>nvfp4</c>, ...), quantized by that format's reference row
/// quantizer and read back by its reference dequantizer, so a cache type adds no number format of its own.
/// Two cache-only options follow the format's own:
/// <list type="bullet">
/// <item><c>:tokens</c> — the format's groups run along tokens instead of along the head: one scale per channel per
/// block of <see cref="TokenBlock"/> positions (KIVI's per-channel keys), quantized when the block has filled and
/// left the float window; until then its positions are held in float32.</item>
/// <item><c>:rot</c> — each KV head is rotated by a randomized Hadamard transform before it is stored
/// (<see cref="KvRotation"/>): keys with their queries, so scores are unchanged in exact arithmetic; values with the
/// inverse applied to the head's output. Only the quantization error changes: outlier channels are spread out.</item>
/// </list>
/// </summary>
public sealed class KvCacheType
{
    private KvCacheType(TensorFormat format, bool alongTokens, bool rotated)
    {
        Format = format; AlongTokens = alongTokens; Rotated = rotated;
    }

    /// <summary>The plain float32 cache (AnyBit's default).</summary>
    public static KvCacheType F32 { get; } = new(FormatRegistry.Parse("f32"), false, false);

    /// <summary>The storage format, as parsed (row-scoped formats are bound to the head or token block when used).</summary>
    public TensorFormat Format { get; }

    /// <summary>Groups run along tokens (one scale per channel per block of positions) rather than along the head.</summary>
    public bool AlongTokens { get; }

    /// <summary>Each head is rotated by a randomized Hadamard transform before it is stored.</summary>
    public bool Rotated { get; }

    /// <summary>The format stores float32 values as they are (no rounding).</summary>
    public bool IsFloat32 => Format.GgmlType == TensorType.F32;

    /// <summary>Float32 and not rotated: the cache AnyBit had before cache types, run by the float attention kernel.</summary>
    public bool IsPlainFloat32 => IsFloat32 && !Rotated;

    /// <summary>Positions per quantization block: the format's group for <see cref="AlongTokens"/>, else 1.</summary>
    public int TokenBlock => AlongTokens ? Format.BlockSize : 1;

    /// <summary>The spec as typed back: the format's canonical name and the cache options.</summary>
    public string Name => Format.Name + (AlongTokens ? ":tokens" : "") + (Rotated ? ":rot" : "");

    public override string ToString() => Name;

    /// <summary>Types are equal when they store the same way (same canonical name).</summary>
    public override bool Equals(object? obj) => obj is KvCacheType other && other.Name == Name;

    public override int GetHashCode() => Name.GetHashCode(StringComparison.Ordinal);

    /// <summary>The format of one stored row: a head of <paramref name="headDim"/> values, or one channel of a token block.</summary>
    public TensorFormat RowFormat(int headDim) => AlongTokens ? Format : Format.Bind(headDim);

    /// <summary>Values in one stored row: the head, or a channel's token block.</summary>
    public int RowLength(int headDim) => AlongTokens ? TokenBlock : headDim;

    /// <summary>Bytes one position of one KV head takes once quantized (a block's bytes shared by its positions).</summary>
    public double BytesPerPosition(int headDim) =>
        AlongTokens ? (double)headDim * Format.ByteSize(TokenBlock) / TokenBlock : RowFormat(headDim).ByteSize(headDim);

    /// <summary>Null when heads of <paramref name="headDim"/> can be stored in this type; otherwise why not.</summary>
    public string? CheckHeadDim(int headDim)
    {
        if (!AlongTokens && RowFormat(headDim).CheckRowLength(headDim) is string why)
            return $"cache type {Name}: {why} (the head dimension)";
        return null;
    }

    /// <summary>
    /// Representative cache types: llama.cpp's, each AnyBit family along the head, per channel along tokens, and
    /// rotated. The tests run each through its format's reference dequantization and the attention reference;
    /// docs/kv-cache.md measures them.
    /// </summary>
    public static IReadOnlyList<string> Examples { get; } =
    [
        "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl",
        "int8:g32:sym", "int4:g32:min", "int4:g64:asym", "int3:g32:min", "int2:g32:min",
        "e2m1:g32", "e4m3:g32", "mxfp4_e2m1", "mxfp6_e2m3", "nvfp4", "nf4:g32",
        "int2:g32:min:tokens", "int4:g32:min:tokens", "q8_0:tokens",
        "f32:rot", "q4_0:rot", "int4:g32:min:rot", "int2:g16:min:tokens:rot",
    ];

    /// <summary>Every form a cache type can take, for error messages and help.</summary>
    public static string ValidForms =>
        "FORMAT[:tokens][:rot] where FORMAT is a format spec whose blocks fit a head (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, " +
        "iq4_nl, int{2..8}:g{N}, minifloats e{E}m{M}:g{N}, mx*, nvfp4, ...); :tokens groups along tokens per channel (KIVI keys), :rot rotates each head";

    /// <summary>Parses a cache type (<c>q4_0</c>, <c>int2:g32:asym:tokens</c>, <c>q4_0:rot</c>); one-line errors.</summary>
    public static KvCacheType Parse(string spec)
    {
        var parts = spec.Trim().ToLowerInvariant().Split(':').ToList();
        bool rotated = parts.Remove("rot"), alongTokens = parts.Remove("tokens");
        if (parts.Remove("rot") || parts.Remove("tokens")) throw new AnyBitException($"cache type '{spec}': an option is given twice");
        string formatSpec = string.Join(':', parts);
        TensorFormat format;
        try
        {
            format = FormatRegistry.Parse(formatSpec);
        }
        catch (AnyBitException e)
        {
            throw new AnyBitException($"cache type '{spec}': {e.Message}");
        }
        if (format.RequiresImportance)
            throw new AnyBitException($"cache type '{spec}': {format.Name} needs an importance matrix, which a cache does not have. Valid forms: {ValidForms}");
        if (format.TensorTrailerBytes != 0 || format is IntFormat { Scope: ScaleScope.Tensor })
            throw new AnyBitException($"cache type '{spec}': {format.Name} has one scale per tensor, which a growing cache cannot fix in advance");
        if (format is IntFormat { Bits: < 2 })
            throw new AnyBitException($"cache type '{spec}': 1-bit integers hold only signs; use int2..int8");
        if (alongTokens)
        {
            if (!format.IsQuantized) throw new AnyBitException($"cache type '{spec}': :tokens needs a quantized format (a float type has no groups)");
            // A row-scoped format (int4:channel, a minifloat without :g) would have no block length to wait for.
            if (!ReferenceEquals(format.Bind(1 << 20), format))
                throw new AnyBitException($"cache type '{spec}': :tokens needs a group size (e.g. int2:g32:tokens), the positions per block");
            if (format.BlockSize > 1024)
                throw new AnyBitException($"cache type '{spec}': token blocks of {format.BlockSize} positions are too long (at most 1024)");
        }
        return new KvCacheType(format, alongTokens, rotated);
    }
}
