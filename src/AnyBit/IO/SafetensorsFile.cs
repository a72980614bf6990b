using System.Buffers.Binary;
using System.Text.Json;

namespace AnyBit.IO;

/// <summary>
/// A memory-mapped .safetensors file: 8-byte little-endian header length, a JSON header naming every tensor's dtype,
/// shape and [begin, end) byte range in the data section, then the data. The header is validated completely before
/// any tensor is exposed, so a hostile file is refused without touching (or allocating for) its data.
/// </summary>
public sealed class SafetensorsFile : ITensorStore
{
    /// <summary>Largest header accepted (the Hugging Face reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MappedFile _file;
    private readonly List<StoredTensor> _tensors = new();
    private readonly Dictionary<string, StoredTensor> _byName = new(StringComparer.Ordinal);

    /// <summary>The header's optional <c>__metadata__</c> string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public string Path => _file.Path;
    public IReadOnlyList<StoredTensor> Tensors => _tensors;
    public StoredTensor? Find(string name) => _byName.GetValueOrDefault(name);

    private SafetensorsFile(MappedFile file, Dictionary<string, string> metadata)
    {
        _file = file;
        Metadata = metadata;
    }

    /// <summary>Maps and validates a file; throws <see cref="InvalidModelFileException"/> naming the problem.</summary>
    public static SafetensorsFile Open(string path)
    {
        var file = new MappedFile(path);
        try
        {
            var result = Parse(file);
            return result;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafetensorsFile Parse(MappedFile file)
    {
        string path = file.Path;
        InvalidModelFileException Bad(string problem) => new(path, problem);

        if (file.Length < 8) throw Bad($"too short for a safetensors file ({file.Length} bytes)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file.Span(0, 8));
        if (headerLength > MaxHeaderBytes)
            throw Bad($"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (not a safetensors file, or corrupt)");
        if ((long)headerLength > file.Length - 8)
            throw Bad($"header length {headerLength} runs past the end of the file ({file.Length} bytes): truncated?");
        long dataStart = 8 + (long)headerLength;
        long dataLength = file.Length - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(file.Span(8, (int)headerLength).ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad($"header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("header is not a JSON object");
            var metadata = new Dictionary<string, string>();
            var entries = new List<(string Name, TensorType Type, long[] Shape, long Begin, long End)>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not an object");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad($"__metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(prop, Bad));
            }

            // Ranges must lie inside the data section and must not overlap.
            foreach (var e in entries)
                if (e.End > dataLength)
                    throw Bad($"tensor '{e.Name}' data [{e.Begin}, {e.End}) lies past the end of the data section ({dataLength} bytes): truncated?");
            var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i].Begin < sorted[i - 1].End && sorted[i].End > sorted[i].Begin)
                    throw Bad($"tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap in the data section");

            var st = new SafetensorsFile(file, metadata);
            foreach (var e in entries)
            {
                if (st._byName.ContainsKey(e.Name)) throw Bad($"tensor '{e.Name}' appears twice");
                var t = new StoredTensor(e.Name, e.Shape, e.Type, file, dataStart + e.Begin, e.End - e.Begin);
                st._tensors.Add(t);
                st._byName.Add(e.Name, t);
            }
            return st;
        }
    }

    private static (string, TensorType, long[], long, long) ParseEntry(JsonProperty prop, Func<string, InvalidModelFileException> bad)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw bad($"tensor '{name}' entry is not an object");
        if (!v.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw bad($"tensor '{name}' has no dtype");
        string dtype = dtypeEl.GetString()!;
        var type = ParseDType(dtype) ?? throw bad($"tensor '{name}' has unsupported dtype '{dtype}' (supported: {string.Join(", ", DTypeNames.Keys)})");
        if (!v.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw bad($"tensor '{name}' has no shape");
        if (shapeEl.GetArrayLength() > 8) throw bad($"tensor '{name}' has {shapeEl.GetArrayLength()} dimensions (at most 8 supported)");
        var shape = new long[shapeEl.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw bad($"tensor '{name}' has an invalid dimension {d}");
            shape[k++] = dim;
        }
        if (!v.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw bad($"tensor '{name}' has no valid data_offsets");
        if (!offEl[0].TryGetInt64(out long begin) || !offEl[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw bad($"tensor '{name}' has invalid data_offsets [{offEl[0]}, {offEl[1]}]");
        long elements = TensorTypes.ElementCount(shape);
        long expected = elements < 0 ? -1 : TensorTypes.ByteSize(type, elements);
        if (expected < 0) throw bad($"tensor '{name}' shape {string.Join("x", shape)} is too large");
        if (expected != end - begin)
            throw bad($"tensor '{name}' spans {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {expected}");
        return (name, type, shape, begin, end);
    }

    private static readonly Dictionary<string, TensorType> DTypeNames = new()
    {
        ["F64"] = TensorType.F64, ["F32"] = TensorType.F32, ["F16"] = TensorType.F16, ["BF16"] = TensorType.BF16,
        ["F8_E4M3"] = TensorType.F8_E4M3, ["F8_E5M2"] = TensorType.F8_E5M2,
        ["I8"] = TensorType.I8, ["U8"] = TensorType.U8, ["U16"] = TensorType.U16, ["U32"] = TensorType.U32, ["U64"] = TensorType.U64, ["BOOL"] = TensorType.Bool, ["I16"] = TensorType.I16, ["I32"] = TensorType.I32, ["I64"] = TensorType.I64,
    };

    /// <summary>The safetensors dtype string for a type, e.g. "BF16".</summary>
    public static string DTypeName(TensorType type) =>
        DTypeNames.FirstOrDefault(kv => kv.Value == type).Key ?? throw new AnyBitException($"type {type} has no safetensors dtype");

    internal static TensorType? ParseDType(string dtype) => DTypeNames.TryGetValue(dtype, out var t) ? t : null;

    public void Dispose() => _file.Dispose();
}
