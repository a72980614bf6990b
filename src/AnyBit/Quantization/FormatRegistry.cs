using System.Globalization;
using System.Text.RegularExpressions;
using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// Turns the format strings users type (<c>q4_k</c>, <c>int3:g64</c>, <c>nf4:g64</c>, <c>e3m2:g32</c>,
/// <c>mxfp6_e3m2</c>, <c>ternary</c>, ...) into <see cref="TensorFormat"/>s. One entry per format; unknown or
/// inconsistent strings are refused with the list of valid forms.
/// </summary>
public static partial class FormatRegistry
{
    /// <summary>First GGUF type id AnyBit uses for formats ggml lacks (far above ggml's ids, which end near 40).</summary>
    public const int FirstCustomTypeId = 1024;

    /// <summary>Metadata key prefix declaring an AnyBit type id: <c>anybit.type.1024 = "int3:g64:asym"</c>.</summary>
    public const string TypeKeyPrefix = "anybit.type.";

    /// <summary>Every form a spec can take, for error messages and help: the format table's ggml types, then the families.</summary>
    public static string ValidForms { get; } =
        "f32, f16, bf16; ggml types " + string.Join(", ", FormatTable.Ggml.Where(f => f.Kind is not null).Select(f => f.Name)) + "; " +
        "int{1..8}[:g{N}|:channel|:tensor][:sym|:asym] (default g128, asym); nf4[:g{N}] and fp4[:g{N}] (default g64); " +
        "e{E}m{M}[fn|fnuz][:g{N}] for any minifloat with E 1..8, M 0..10 (default one scale per row); " +
        "mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8 [:g{N}] [:even|:away]; nvfp4; " +
        "ternary[:absmean|:absmax][:tq1_0|:tq2_0]; cb{1..4}[:g{N}] (k-means codebook per group, default g128)";

    /// <summary>The ggml format for a ggml type id, if AnyBit can write it.</summary>
    public static TensorFormat? ForGgmlType(TensorType type) => FormatTable.ByType(type) as GgmlFormat;

    /// <summary>Parses a format string; throws <see cref="AnyBitException"/> listing the valid forms.</summary>
    public static TensorFormat Parse(string spec)
    {
        string s = spec.Trim().ToLowerInvariant();
        if (s.Length == 0) throw Unknown(spec);
        if (FormatTable.ByName(s) is { } ggml) return ggml;
        var parts = s.Split(':');
        string head = parts[0];
        var options = parts.Skip(1).ToList();
        try
        {
            var m = IntHead().Match(head);
            if (m.Success) return ParseInt(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), options, spec);
            var cb = CodebookHead().Match(head);
            if (cb.Success)
            {
                int group = TakeGroup(options, spec) ?? 128;
                NoLeftovers(options, spec);
                return new CodebookFormat(int.Parse(cb.Groups[1].Value, CultureInfo.InvariantCulture), group);
            }
            switch (head)
            {
                case "nf4" or "fp4":
                    return new LookupTableFormat(head, TakeGroup(options, spec) ?? 64).Also(_ => NoLeftovers(options, spec));
                case "nvfp4":
                    NoLeftovers(options, spec);
                    return new NvFp4Format();
                case "ternary":
                {
                    bool absmean = !Take(options, "absmax");
                    Take(options, "absmean");
                    var packing = Take(options, "tq1_0") ? TensorType.TQ1_0 : TensorType.TQ2_0;
                    Take(options, "tq2_0");
                    NoLeftovers(options, spec);
                    return new TernaryFormat(absmean, packing);
                }
            }
            var mx = MxElement.All.FirstOrDefault(e => e.Name == head);
            if (mx is not null)
            {
                int block = TakeGroup(options, spec) ?? 32;
                var rounding = Take(options, "away") ? MxRounding.NearestAway : MxRounding.NearestEven;
                Take(options, "even");
                NoLeftovers(options, spec);
                return new MxFormat(mx, block, rounding);
            }
            if (head.StartsWith('e') || head.StartsWith("fp8") || head.StartsWith("float"))
            {
                var element = Minifloat.Parse(head);
                int? group = TakeGroup(options, spec);
                bool channel = Take(options, "channel");
                NoLeftovers(options, spec);
                return new MinifloatFormat(element, group ?? 1, perChannel: group is null || channel);
            }
        }
        catch (AnyBitException e) when (!e.Message.Contains("valid forms", StringComparison.Ordinal))
        {
            throw new AnyBitException($"format '{spec}': {e.Message}. Valid forms: {ValidForms}");
        }
        throw Unknown(spec);
    }

    private static TensorFormat ParseInt(int bits, List<string> options, string spec)
    {
        if (bits is < 1 or > 8) throw new AnyBitException($"int{bits} has {bits} bits; 1..8 are supported");
        int? group = TakeGroup(options, spec);
        bool channel = Take(options, "channel"), tensor = Take(options, "tensor");
        bool sym = Take(options, "sym");
        bool asym = Take(options, "asym");
        if (sym && asym) throw new AnyBitException("both :sym and :asym given");
        if ((group is not null ? 1 : 0) + (channel ? 1 : 0) + (tensor ? 1 : 0) > 1) throw new AnyBitException("give one of :g{N}, :channel, :tensor");
        NoLeftovers(options, spec);
        var scope = channel ? ScaleScope.Channel : tensor ? ScaleScope.Tensor : ScaleScope.Group;
        return new IntFormat(bits, group ?? 128, symmetric: sym, scope);
    }

    private static bool Take(List<string> options, string word) => options.Remove(word);

    private static int? TakeGroup(List<string> options, string spec)
    {
        var g = options.FirstOrDefault(o => o.Length > 1 && o[0] is 'g' or 'b' && o[1..].All(char.IsAsciiDigit));
        if (g is null) return null;
        options.Remove(g);
        int n = int.Parse(g[1..], CultureInfo.InvariantCulture);
        if (n < 1 || n > 1 << 20) throw new AnyBitException($"group size {n} is out of range");
        return n;
    }

    private static void NoLeftovers(List<string> options, string spec)
    {
        if (options.Count > 0) throw new AnyBitException($"unknown option ':{options[0]}'");
    }

    private static AnyBitException Unknown(string spec) => new($"unknown format '{spec}'. Valid forms: {ValidForms}");

    private static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }

    /// <summary>The spec string stored in a GGUF file for an AnyBit type (scope resolved to the stored layout).</summary>
    public static string StorageSpec(TensorFormat format) => format.StorageName;

    [GeneratedRegex(@"^int(\d+)$")]
    private static partial Regex IntHead();

    [GeneratedRegex(@"^(?:cb|kmeans)(\d+)$")]
    private static partial Regex CodebookHead();
}
