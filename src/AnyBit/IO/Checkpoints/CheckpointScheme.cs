using System.Text.Json;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// One quantized-checkpoint format of the Hugging Face world (a <c>quant_method</c> of <c>quantization_config</c>):
/// which of its tensors make up one linear layer, and how they become one AnyBit tensor that holds exactly the
/// values the format's own dequantization gives. Each format is one subclass; <see cref="QuantizedCheckpoint"/>
/// holds the table.
/// </summary>
public abstract class CheckpointScheme
{
    /// <summary>The <c>quant_method</c> values this scheme reads.</summary>
    public abstract IReadOnlyList<string> Methods { get; }

    /// <summary>
    /// Reads <paramref name="config"/> (the <c>quantization_config</c> object) and returns the reader of one
    /// checkpoint, or throws a one-line error for settings this version does not run.
    /// </summary>
    public abstract CheckpointReader Open(JsonElement config, string source);
}

/// <summary>The modules of one checkpoint, as its <see cref="CheckpointScheme"/> understood its config.</summary>
public abstract class CheckpointReader
{
    /// <summary>What <c>inspect</c> shows: "GPTQ int4 g128 asym (v1, act-order)".</summary>
    public abstract string Description { get; }

    /// <summary>
    /// The module prefix (<c>model.layers.0.self_attn.q_proj</c>) a stored tensor is the marker of, or null when the
    /// tensor is not a quantized module's marker (it then passes through unless some module consumed it).
    /// </summary>
    public abstract string? ModuleOf(string tensorName);

    /// <summary>Builds the module's weight (named <c>PREFIX.weight</c>, or the name the scheme's tensors stand for)
    /// from its stored tensors, marking each one used.</summary>
    public abstract StoredTensor Convert(string prefix, ModuleTensors tensors);
}

/// <summary>A module's stored tensors by suffix, with the checks every scheme needs, each failing with one line naming
/// the tensor and the problem.</summary>
public sealed class ModuleTensors(ITensorStore store, string prefix, string source, HashSet<string> used)
{
    public string Prefix => prefix;
    public string Source => source;

    /// <summary>PREFIX.SUFFIX, marked used; null when absent.</summary>
    public StoredTensor? Optional(string suffix)
    {
        var t = store.Find(prefix + "." + suffix);
        if (t is not null) used.Add(t.Name);
        return t;
    }

    /// <summary>The tensor <paramref name="name"/>, marked used, or the one-line error (schemes whose tensors are not
    /// PREFIX.SUFFIX).</summary>
    public StoredTensor RequiredNamed(string name)
    {
        var t = store.Find(name) ?? throw new InvalidModelFileException(source, $"quantized module '{prefix}' has no tensor '{name}'");
        used.Add(t.Name);
        return t;
    }

    /// <summary>PREFIX.SUFFIX, marked used, or the one-line error.</summary>
    public StoredTensor Required(string suffix) =>
        Optional(suffix) ?? throw new InvalidModelFileException(source, $"quantized module '{prefix}' has no tensor '{prefix}.{suffix}'");

    public InvalidModelFileException Bad(StoredTensor t, string problem) => new(source, $"tensor '{t.Name}': {problem}");

    /// <summary>Checks a tensor's shape and type class.</summary>
    public void Expect(StoredTensor t, long[] shape, params TensorType[] types)
    {
        if (!t.Shape.SequenceEqual(shape))
            throw Bad(t, $"shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
        if (types.Length > 0 && !types.Contains(t.Type))
            throw Bad(t, $"type {TensorTypes.Traits(t.Type).Name}, expected {string.Join(" or ", types.Select(x => TensorTypes.Traits(x).Name))}");
    }

    /// <summary>Checks that <paramref name="t"/> is a packed matrix: two dimensions of int32 words.</summary>
    public void ExpectPackedMatrix(StoredTensor t)
    {
        if (t.Shape.Length != 2 || t.Type is not (TensorType.I32 or TensorType.U32))
            throw Bad(t, $"expected a 2-D int32 tensor, found {TensorTypes.Traits(t.Type).Name} [{string.Join(", ", t.Shape)}]");
    }

    /// <summary>The tensor's integers (I32, U32 as their bits, or I64).</summary>
    public static long[] Integers(StoredTensor t) => t.Type == TensorType.I64
        ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(t.Bytes).ToArray()
        : Array.ConvertAll(Int32s(t), x => (long)x);

    /// <summary>The tensor's 32-bit integers (I32, or U32 as their bits).</summary>
    public static int[] Int32s(StoredTensor t)
    {
        var a = new int[t.ElementCount];
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(t.Bytes).CopyTo(a);
        return a;
    }

    /// <summary>The tensor's values as float32 (F16, BF16, F32: exact).</summary>
    public float[] Floats(StoredTensor t)
    {
        if (t.Type is not (TensorType.F16 or TensorType.BF16 or TensorType.F32))
            throw Bad(t, $"type {TensorTypes.Traits(t.Type).Name}, expected F16, BF16 or F32");
        return t.ToFloat32();
    }
}

/// <summary>Small readers of <c>quantization_config</c> values.</summary>
internal static class ConfigValues
{
    public static int? Int(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : null;

    public static bool? Bool(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    public static string? Str(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
