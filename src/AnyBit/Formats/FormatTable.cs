using System.Reflection;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Formats;

/// <summary>
/// The format table: every stored type AnyBit reads, keyed by GGUF/safetensors type id and by name. Its rows are the
/// ggml types, one class per file in Formats/Ggml (found here by reflection, so that adding a type is adding its
/// file), and the plain element types (<see cref="ElementFormat.All"/>). Parametric families (int, NF4, MX, ...)
/// are parsed by <see cref="FormatRegistry"/>. Decoding, writing, kernel binding, file types, names and sizes are
/// all looked up here.
/// </summary>
public static class FormatTable
{
    /// <summary>The ggml types, in type-id order.</summary>
    public static IReadOnlyList<GgmlFormat> Ggml { get; } = typeof(GgmlFormat).Assembly.GetTypes()
        .Where(t => t.IsSubclassOf(typeof(GgmlFormat)) && !t.IsAbstract)
        .Select(t => (GgmlFormat)Activator.CreateInstance(t)!)
        .OrderBy(f => (int)f.Type)
        .ToArray();

    private static readonly Dictionary<TensorType, TensorFormat> ById =
        Ggml.Cast<TensorFormat>().Concat(ElementFormat.All).ToDictionary(f => f switch
        {
            GgmlFormat g => g.Type,
            ElementFormat e => e.Type,
            _ => throw new InvalidOperationException(),
        });

    private static readonly Dictionary<string, GgmlFormat> ByNameTable = Ggml.ToDictionary(f => f.Name);

    /// <summary>The row of a stored type id; null for ids AnyBit cannot decode.</summary>
    public static TensorFormat? ByType(TensorType type) => ById.GetValueOrDefault(type);

    /// <summary>The ggml type users name with <paramref name="name"/> ("q4_k"); null when none.</summary>
    public static GgmlFormat? ByName(string name) => ByNameTable.GetValueOrDefault(name.Trim().ToLowerInvariant());

    /// <summary>The name a type id is shown with: "Q4_K", "BF16", "I8".</summary>
    public static string? TypeName(TensorType type) => ByType(type) switch
    {
        GgmlFormat g => g.TypeName,
        ElementFormat e => e.TypeName,
        _ => null,
    };

    /// <summary>True for types that hold weights (floats and the ggml types), false for integer and boolean tensors.</summary>
    public static bool HoldsWeights(TensorType type) => ByType(type) switch
    {
        GgmlFormat => true,
        ElementFormat e => e.IsFloat,
        _ => false,
    };
}
