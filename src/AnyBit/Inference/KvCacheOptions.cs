using AnyBit.Models;

namespace AnyBit.Inference;

/// <summary>
/// The KV cache of a sequence: how keys and values are stored (<see cref="KvCacheType"/>) and how many of the newest
/// positions stay in float32 beside them (<see cref="Window"/>, KIVI's residual). The default is the float32 cache.
/// </summary>
/// <remarks>
/// Which form a query reads is a function of its own position only, never of how the prompt was cut into chunks:
/// a query at position i reads position j quantized when j &lt; Q(i + 1), where Q(n), the quantized prefix of a
/// sequence of n positions, is max(0, n − window) for types grouped along the head, and that rounded down to whole
/// token blocks for <c>:tokens</c> types (a block is quantized once all its positions are older than the window).
/// So a prompt processed in one chunk or token by token reads the same values.
/// </remarks>
public sealed record KvCacheOptions
{
    /// <summary>The float32 cache.</summary>
    public static KvCacheOptions Default { get; } = new();

    /// <summary>How keys are stored (default float32).</summary>
    public KvCacheType Key { get; init; } = KvCacheType.F32;

    /// <summary>How values are stored (default float32).</summary>
    public KvCacheType Value { get; init; } = KvCacheType.F32;

    /// <summary>The newest positions held in float32 as well as (once they leave it) quantized; 0 for none.</summary>
    public int Window { get; init; }

    /// <summary>Float32 keys and values, not rotated: the float attention kernel, with no window to keep.</summary>
    public bool IsPlainFloat32 => Key.IsPlainFloat32 && Value.IsPlainFloat32;

    /// <summary>Parses the command line's spellings (null for a side keeps float32); one-line errors.</summary>
    public static KvCacheOptions Parse(string? key, string? value, int window) => new()
    {
        Key = key is null ? KvCacheType.F32 : KvCacheType.Parse(key),
        Value = value is null ? KvCacheType.F32 : KvCacheType.Parse(value),
        Window = window >= 0 ? window : throw new AnyBitException($"cache window {window} must not be negative"),
    };

    /// <summary>
    /// Parses the short form of a whole cache, <c>KEY[/VALUE][@WINDOW]</c> (<c>q8_0/q4_0</c>, <c>q4_0:rot</c> for both
    /// sides, <c>int2:g32:min:tokens/int2:g32:min@128</c>); the inverse of <see cref="ShortName"/>.
    /// </summary>
    public static KvCacheOptions ParseShort(string text)
    {
        string s = text.Trim();
        int window = 0;
        if (s.IndexOf('@') is int at and >= 0)
        {
            if (!int.TryParse(s[(at + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out window))
                throw new AnyBitException($"cache '{text}': the window after '@' must be a number of positions");
            s = s[..at];
        }
        var sides = s.Split('/');
        if (sides.Length > 2 || sides.Any(x => x.Length == 0)) throw new AnyBitException($"cache '{text}' is not KEY[/VALUE][@WINDOW]");
        return Parse(sides[0], sides.Length == 2 ? sides[1] : sides[0], window);
    }

    /// <summary>"q8_0/q4_0", "q4_0:rot", "int2:g32:min:tokens/int2:g32:min@128".</summary>
    public string ShortName => (Key.Equals(Value) ? Key.Name : $"{Key.Name}/{Value.Name}") + (Window > 0 ? $"@{Window}" : "");

    /// <summary>Throws <see cref="AnyBitException"/> when this cache cannot hold <paramref name="config"/>'s heads for <paramref name="contextSize"/> positions.</summary>
    public void Validate(ModelConfig config, int contextSize)
    {
        if (Window < 0) throw new AnyBitException($"cache window {Window} must not be negative");
        if (Window > contextSize) throw new AnyBitException($"cache window {Window} is larger than the context of {contextSize} positions");
        foreach (var t in new[] { Key, Value })
            if (t.CheckHeadDim(config.HeadDim) is string why) throw new AnyBitException(why);
    }

    /// <summary>"K q4_0:rot, V q4_0:rot, window 128".</summary>
    public override string ToString() => $"K {Key.Name}, V {Value.Name}" + (Window > 0 ? $", window {Window}" : "");

    /// <summary>
    /// Bytes the cache takes: per position once quantized (both sides, every layer and KV head), and for a whole
    /// sequence of <paramref name="contextSize"/> positions including the float32 window (<see cref="KvMemory"/>).
    /// </summary>
    public KvMemory Memory(ModelConfig config, int contextSize)
    {
        int heads = config.NumLayers * config.NumKvHeads, hd = config.HeadDim;
        double perPosition = heads * (Key.BytesPerPosition(hd) + Value.BytesPerPosition(hd));
        long packed = (long)heads * (PackedBytes(Key, hd, contextSize) + PackedBytes(Value, hd, contextSize));
        long window = (long)heads * hd * sizeof(float) * ((long)FloatRows(Key, contextSize) + FloatRows(Value, contextSize));
        return new KvMemory(perPosition, packed + window, window);
    }

    /// <summary>The stored positions: float32 rows are the whole cache of a float32 type, packed blocks otherwise.</summary>
    private static long PackedBytes(KvCacheType t, int hd, int contextSize) =>
        t.IsFloat32 ? (long)contextSize * hd * sizeof(float) : KvStore.PackedRowsPerHead(t, hd, contextSize) * t.RowFormat(hd).ByteSize(t.RowLength(hd));

    /// <summary>Float32 rows a quantized type keeps beside its blocks (the window, a filling token block, a chunk).</summary>
    private int FloatRows(KvCacheType t, int contextSize) => t.IsFloat32 ? 0 : KvStore.FloatPositions(t, Window, contextSize);
    /// <summary>
    /// Sequences of <paramref name="contextSize"/> positions whose caches fit in <paramref name="budgetBytes"/>:
    /// the budget divided by one sequence's bytes (<see cref="Memory"/>, float32 rows included), rounded down. Every
    /// slot's cache is allocated whole when the scheduler starts, so this is also the most memory the caches take.
    /// Throws <see cref="AnyBitException"/> saying what one sequence needs when not even one fits.
    /// </summary>
    public int SequencesWithin(ModelConfig config, int contextSize, long budgetBytes)
    {
        if (budgetBytes <= 0) throw new AnyBitException($"the KV cache budget of {budgetBytes} bytes must be positive");
        long perSequence = Memory(config, contextSize).BytesPerSequence;
        long fits = budgetBytes / Math.Max(1, perSequence);
        if (fits < 1)
            throw new AnyBitException($"a KV cache budget of {FormatBytes(budgetBytes)} holds no sequence: one sequence of {contextSize} positions "
                + $"needs {FormatBytes(perSequence)} ({this}); raise the budget, lower the context or choose a smaller cache type");
        return (int)Math.Min(fits, int.MaxValue);
    }

    /// <summary>"8.00 MiB (8,388,608 bytes)": binary units for reading, the exact count for comparing.</summary>
    public static string FormatBytes(long bytes) =>
        (bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : bytes >= 1L << 20 ? $"{bytes / (double)(1L << 20):F2} MiB" : $"{bytes / 1024.0:F2} KiB")
        + $" ({bytes:N0} bytes)";
}

/// <summary>Bytes of a KV cache: per position (quantized), per sequence (all of it), and of that the float32 window.</summary>
public sealed record KvMemory(double BytesPerPosition, long BytesPerSequence, long WindowBytes);
