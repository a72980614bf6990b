using System.Text.Json;

namespace AnyBit.IO;

/// <summary>
/// A checkpoint split across several .safetensors files, tied together by <c>model.safetensors.index.json</c>
/// (<c>{"weight_map": {tensor: file}}</c>), or a single file. Tensors of all shards are presented as one store.
/// </summary>
public sealed class SafetensorsCheckpoint : ITensorStore
{
    private readonly List<SafetensorsFile> _files = new();
    private readonly List<StoredTensor> _tensors = new();
    private readonly Dictionary<string, StoredTensor> _byName = new(StringComparer.Ordinal);

    public IReadOnlyList<StoredTensor> Tensors => _tensors;
    public StoredTensor? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The shard files opened.</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>
    /// Opens the checkpoint in <paramref name="folder"/>: the index if present, else <c>model.safetensors</c>, else
    /// the single .safetensors file there.
    /// </summary>
    public static SafetensorsCheckpoint OpenFolder(string folder)
    {
        string index = Path.Combine(folder, "model.safetensors.index.json");
        if (File.Exists(index)) return OpenIndex(index);
        string single = Path.Combine(folder, "model.safetensors");
        if (!File.Exists(single))
        {
            var candidates = Directory.GetFiles(folder, "*.safetensors")
                .Where(f => !Path.GetFileName(f).StartsWith("reference", StringComparison.Ordinal)).ToArray();
            if (candidates.Length != 1)
                throw new InvalidModelFileException(folder, candidates.Length == 0
                    ? "no model.safetensors or model.safetensors.index.json in the folder"
                    : "several .safetensors files but no model.safetensors.index.json to say which tensors are where");
            single = candidates[0];
        }
        var ckpt = new SafetensorsCheckpoint();
        ckpt.AddFile(SafetensorsFile.Open(single));
        return ckpt;
    }

    /// <summary>Opens a sharded checkpoint from its index file.</summary>
    public static SafetensorsCheckpoint OpenIndex(string indexPath)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        Dictionary<string, string> weightMap = new(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidModelFileException(indexPath, "index has no weight_map object");
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new InvalidModelFileException(indexPath, $"weight_map entry '{p.Name}' is not a file name");
                string shard = p.Value.GetString()!;
                if (shard.Contains('/') || shard.Contains('\\') || shard == ".." )
                    throw new InvalidModelFileException(indexPath, $"weight_map entry '{p.Name}' names a file outside the folder: '{shard}'");
                weightMap[p.Name] = shard;
            }
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(indexPath, $"not valid JSON ({e.Message})");
        }

        var ckpt = new SafetensorsCheckpoint();
        try
        {
            foreach (string shard in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
                ckpt.AddFile(SafetensorsFile.Open(Path.Combine(folder, shard)));
            foreach (var (tensor, shard) in weightMap)
            {
                var t = ckpt.Find(tensor);
                if (t is null || Path.GetFileName(t.File.Path) != shard)
                    throw new InvalidModelFileException(indexPath, $"tensor '{tensor}' is not in shard {shard}");
            }
        }
        catch
        {
            ckpt.Dispose();
            throw;
        }
        return ckpt;
    }

    private void AddFile(SafetensorsFile file)
    {
        _files.Add(file);
        foreach (var t in file.Tensors)
        {
            if (!_byName.TryAdd(t.Name, t)) throw new InvalidModelFileException(file.Path, $"tensor '{t.Name}' also appears in another shard");
            _tensors.Add(t);
        }
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
