namespace AnyBit.IO.Checkpoints;

/// <summary>
/// A checkpoint's tensors with each quantized module replaced by the one tensor it converts to (in memory), the
/// rest passed through from the files.
/// </summary>
internal sealed class RepackedStore : ITensorStore
{
    private readonly ITensorStore _raw;
    private readonly List<StoredTensor> _tensors = new();
    private readonly Dictionary<string, StoredTensor> _byName = new(StringComparer.Ordinal);
    private readonly List<MappedFile> _memory = new();

    private RepackedStore(ITensorStore raw) => _raw = raw;

    public IReadOnlyList<StoredTensor> Tensors => _tensors;
    public StoredTensor? Find(string name) => _byName.GetValueOrDefault(name);

    public static RepackedStore Create(ITensorStore raw, CheckpointReader reader, string source)
    {
        var store = new RepackedStore(raw);
        try
        {
            var used = new HashSet<string>(StringComparer.Ordinal);
            var converted = new List<StoredTensor>();
            foreach (var t in raw.Tensors)
            {
                if (reader.ModuleOf(t.Name) is not string prefix) continue;
                var weight = reader.Convert(prefix, new ModuleTensors(raw, prefix, source, used));
                store._memory.Add(weight.File);
                converted.Add(weight);
            }
            foreach (var t in raw.Tensors.Where(t => !used.Contains(t.Name)).Concat(converted))
            {
                if (!store._byName.TryAdd(t.Name, t))
                    throw new InvalidModelFileException(source, $"tensor '{t.Name}' is stored both quantized and as it is");
                store._tensors.Add(t);
            }
            return store;
        }
        catch
        {
            foreach (var m in store._memory) m.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var m in _memory) m.Dispose();
        _raw.Dispose();
    }
}
