using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// Turns the format strings users type (<c>q4_k</c>, <c>int3:g64</c>, <c>nf4:g64</c>, <c>e3m2:g32</c>,
/// <c>mxfp6_e3m2</c>, <c>ternary</c>, ...) into <see cref="TensorFormat"/>s. One entry per format; unknown or
/// inconsistent strings are refused with the list of valid forms.
/// </summary>
public static class FormatRegistry
{
    /// <summary>First GGUF type id AnyBit uses for formats ggml lacks (far above ggml's ids, which end near 40).</summary>
    public const int FirstCustomTypeId = 1024;

    /// <summary>Metadata key prefix declaring an AnyBit type id: <c>anybit.type.1024 = "int3:g64:asym"</c>.</summary>
    public const string TypeKeyPrefix = "anybit.type.";

    /// <summary>Every parametric family (<see cref="FormatFamily"/>), found by reflection, in valid-forms order.</summary>
    public static IReadOnlyList<FormatFamily> Families { get; } = typeof(FormatFamily).Assembly.GetTypes()
        .Where(t => t.IsSubclassOf(typeof(FormatFamily)) && !t.IsAbstract)
        .Select(t => (FormatFamily)Activator.CreateInstance(t, nonPublic: true)!)
        .OrderBy(f => f.Order)
        .ToArray();

    /// <summary>Every form a spec can take, for error messages and help: the format table's ggml types, then the families.</summary>
    public static string ValidForms { get; } =
        "f32, f16, bf16; ggml types " + string.Join(", ", FormatTable.Ggml.Where(f => f.IsQuantized).Select(f => f.Name)) + "; " +
        string.Join("; ", Families.Select(f => f.Forms));

    /// <summary>The ggml format for a ggml type id, if AnyBit can write it.</summary>
    public static TensorFormat? ForGgmlType(TensorType type) => FormatTable.ByType(type) as GgmlFormat;

    /// <summary>Parses a format string; throws <see cref="AnyBitException"/> listing the valid forms.</summary>
    public static TensorFormat Parse(string spec)
    {
        string s = spec.Trim().ToLowerInvariant();
        if (s.Length == 0) throw Unknown(spec);
        if (FormatTable.ByName(s) is { } ggml) return ggml;
        var parts = s.Split(':');
        var options = new FormatOptions(parts.Skip(1));
        try
        {
            foreach (var family in Families)
                if (family.TryParse(parts[0], options) is { } format)
                {
                    options.NoLeftovers();
                    return format;
                }
        }
        catch (AnyBitException e) when (!e.Message.Contains("valid forms", StringComparison.Ordinal))
        {
            throw new AnyBitException($"format '{spec}': {e.Message}. Valid forms: {ValidForms}");
        }
        throw Unknown(spec);
    }

    private static AnyBitException Unknown(string spec) => new($"unknown format '{spec}'. Valid forms: {ValidForms}");

    /// <summary>The spec string stored in a GGUF file for an AnyBit type (scope resolved to the stored layout).</summary>
    public static string StorageSpec(TensorFormat format) => format.StorageName;
}
