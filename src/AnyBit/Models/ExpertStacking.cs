using AnyBit.IO;

namespace AnyBit.Models;

/// <summary>
/// Joins per-expert 2-D tensors (Hugging Face's <c>mlp.experts.3.gate_proj.weight</c>, mapped to
/// <c>blk.N.ffn_gate.3.weight</c>, which older llama.cpp GGUF files hold too) into the 3-D tensor every other part of
/// AnyBit reads (<c>blk.N.ffn_gate_exps.weight</c>, [experts, rows, columns]), as llama.cpp's converter does. The
/// stacked bytes are a copy in memory: the loader then slices them per expert again, but the quantizer and the
/// loader see one tensor per projection whatever the file held. Experts of mixed types are left apart (see Stack).
/// </summary>
internal static class ExpertStacking
{
    /// <summary>
    /// Replaces the per-expert entries of <paramref name="byName"/> by stacked tensors; the memory holding them is
    /// added to <paramref name="owned"/>. A set with a missing expert or mixed shapes or types is refused by name.
    /// </summary>
    public static void Stack(Dictionary<string, StoredTensor> byName, List<IDisposable> owned)
    {
        var groups = new Dictionary<string, SortedDictionary<int, (string Key, StoredTensor Tensor)>>(StringComparer.Ordinal);
        foreach (var (name, tensor) in byName)
        {
            if (TensorRoles.FromGgufPerExpert(name) is not (TensorRole role, int layer, int expert)) continue;
            string stacked = role.GgufName(layer);
            if (!groups.TryGetValue(stacked, out var experts)) groups[stacked] = experts = new SortedDictionary<int, (string, StoredTensor)>();
            experts[expert] = (name, tensor);
        }
        foreach (var (stacked, experts) in groups)
        {
            var first = experts.Values.First().Tensor;
            string file = first.File.Path;
            if (byName.ContainsKey(stacked)) throw new InvalidModelFileException(file, $"both {stacked} and per-expert tensors ({first.Name}) are present");
            int count = experts.Count;
            if (experts.Keys.Last() != count - 1)
                throw new InvalidModelFileException(file, $"the experts of {stacked} are not numbered 0..{count - 1} (expert {Enumerable.Range(0, count).First(e => !experts.ContainsKey(e))} is missing)");
            foreach (var (_, t) in experts.Values)
                if (!t.Shape.SequenceEqual(first.Shape) || t.Shape.Length != 2 || t.InputOrder is not null)
                    throw new InvalidModelFileException(t.File.Path, $"expert tensor {t.Name} is {t.TypeName} {t.ShapeText}, unlike {first.Name} ({first.TypeName} {first.ShapeText}): experts of one layer must match");
            // Experts of different types (AnyBit's per-expert mixed precision) cannot be one tensor: they stay under
            // their per-expert names, which the weight loader reads expert by expert.
            if (experts.Values.Any(x => x.Tensor.Type != first.Type || x.Tensor.TypeName != first.TypeName)) continue;
            long each = first.ByteLength;
            var memory = MappedFile.InMemory(file, each * count);
            owned.Add(memory);
            foreach (var (e, (key, t)) in experts)
            {
                t.Bytes.CopyTo(memory.Writable(e * each, checked((int)each)));
                byName.Remove(key);
            }
            byName[stacked] = new StoredTensor(stacked, [count, first.Shape[0], first.Shape[1]], first.Type, memory, 0, each * count, first.Format);
        }
    }
}
