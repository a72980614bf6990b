using AnyBit.IO;

namespace AnyBit.Models;

/// <summary>One stored weight as a user sees it in <c>anybit inspect</c>.</summary>
public sealed record WeightInfo(string Name, long[] Shape, string Type, long Bytes);

/// <summary>
/// The weights of a model under GGUF tensor names (<c>token_embd.weight</c>, <c>blk.N.attn_q.weight</c>, ...),
/// whatever file format they came from.
/// </summary>
public interface IModelWeights : IDisposable
{
    /// <summary>The tensors as stored in the file(s), under their original names.</summary>
    IReadOnlyList<WeightInfo> Weights { get; }

    bool Contains(string name);

    /// <summary>Shape of a tensor, outermost dimension first.</summary>
    long[] Shape(string name);

    /// <summary>Decodes a whole tensor to float32.</summary>
    float[] ReadFloat32(string name);

    /// <summary>The loader has copied <paramref name="name"/> out (decoded or repacked): its file pages may leave memory.</summary>
    void Release(string name) { }
}

/// <summary>
/// Weights held in an <see cref="ITensorStore"/>, with a mapping from GGUF names to the store's names (identity for
/// GGUF, the Hugging Face naming for safetensors checkpoints).
/// </summary>
public sealed class StoreWeights : IModelWeights
{
    private readonly ITensorStore _store;
    private readonly Dictionary<string, StoredTensor> _byCanonical = new(StringComparer.Ordinal);
    private readonly Func<string, int>? _rotaryHeads;
    private readonly List<IDisposable> _stacked = []; // memory of per-expert tensors joined into 3-D ones
    private readonly bool _normOffset;

    /// <param name="store">the tensors</param>
    /// <param name="toCanonical">a stored name's GGUF name, or null for tensors the model does not use</param>
    /// <param name="rotaryHeads">for a Hugging Face folder of an architecture that rotates adjacent pairs: the
    /// rotary heads of a GGUF name whose rows are read in <see cref="RopeRows"/> order (0 for the others)</param>
    /// <param name="normOffset">norm weights are stored as w for a (1 + w) scale (a Gemma Hugging Face folder): read them
    /// with 1 added, as GGUF stores them (<see cref="Architecture.NormWeightOffset"/>)</param>
    public StoreWeights(ITensorStore store, Func<string, string?> toCanonical, Func<string, int>? rotaryHeads = null, bool normOffset = false)
    {
        _store = store;
        _rotaryHeads = rotaryHeads;
        _normOffset = normOffset;
        foreach (var t in store.Tensors)
        {
            string? canonical = toCanonical(t.Name);
            if (canonical is not null) _byCanonical[canonical] = t;
        }
        ExpertStacking.Stack(_byCanonical, _stacked);
        Weights = store.Tensors.Select(t => new WeightInfo(t.Name, t.Shape, t.TypeName, t.ByteLength)).ToList();
    }

    public ITensorStore Store => _store;
    public IReadOnlyList<WeightInfo> Weights { get; }
    public bool Contains(string name) => _byCanonical.ContainsKey(name);
    public StoredTensor Tensor(string name) => _byCanonical.TryGetValue(name, out var t) ? t : throw new AnyBitException($"model has no tensor '{name}'");
    public long[] Shape(string name) => Tensor(name).Shape;
    public float[] ReadFloat32(string name)
    {
        var t = Tensor(name);
        if (t.Format is null && !TensorDecoder.CanDecode(t.Type))
            throw new InvalidModelFileException(t.File.Path, $"tensor '{t.Name}' is {t.TypeName}, which this version cannot run yet");
        var values = t.ToFloat32();
        if (_normOffset && TensorRoles.FromGguf(name) is ({ Kind: TensorKind.Norm }, _))
            for (int i = 0; i < values.Length; i++) values[i] += 1f; // float32, as transformers' (1.0 + weight.float())
        int heads = _rotaryHeads?.Invoke(name) ?? 0;
        return heads > 0 ? RopeRows.ToAdjacentPairs<float>(values, heads, RowLength(t)) : values;
    }

    public void Release(string name)
    {
        if (_byCanonical.TryGetValue(name, out var t)) t.File.Release(t.Offset, t.ByteLength);
    }

    /// <summary>A tensor's stored bytes, rows in the order <see cref="ReadFloat32"/> gives them.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        var t = Tensor(name);
        int heads = _rotaryHeads?.Invoke(name) ?? 0;
        if (heads == 0) return t.Bytes;
        long rows = t.Shape.Length < 2 ? t.ElementCount : t.Rows;
        return RopeRows.ToAdjacentPairs(t.Bytes, heads, (int)(t.ByteLength / rows));
    }

    /// <summary>
    /// Replaces each fused tensor of <paramref name="c"/>'s family (<see cref="Architecture.FusedRoles"/>) by views of
    /// its rows under its parts' names (Phi-3's attn_qkv becomes attn_q, attn_k and attn_v), so that the loader, the
    /// kernels and the quantizer see the parts. Rows are contiguous and whole in every stored type, so a part's bytes
    /// are a slice of the fused tensor's.
    /// </summary>
    public void SplitFused(ModelConfig c)
    {
        foreach (var fused in c.Architecture.FusedRoles)
            for (int l = 0; l < c.NumLayers; l++)
            {
                string name = fused.GgufName(l);
                if (!_byCanonical.TryGetValue(name, out var t)) continue;
                var parts = fused.Parts!;
                long[] expected = fused.Shape(c);
                if (!t.Shape.SequenceEqual(expected))
                    throw new InvalidModelFileException(t.File.Path, $"tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}], the config implies [{string.Join(", ", expected)}]");
                long rowBytes = t.ByteLength / t.Rows;
                if (rowBytes * t.Rows != t.ByteLength)
                    throw new InvalidModelFileException(t.File.Path, $"tensor '{t.Name}' ({t.TypeName}) cannot be split into rows");
                _byCanonical.Remove(name);
                long row = 0;
                foreach (var part in parts)
                {
                    long rows = part.Shape(c)[0];
                    _byCanonical[part.GgufName(l)] = new StoredTensor($"{t.Name} rows {row}..{row + rows - 1}", [rows, t.RowLength], t.Type, t.File,
                        t.Offset + row * rowBytes, rows * rowBytes, t.Format) { InputOrder = t.InputOrder };
                    row += rows;
                }
            }
    }

    /// <summary>gpt-oss's Hugging Face experts (<see cref="Architecture.HfInterleavedExperts"/>) as the table's 3-D tensors.</summary>
    public void SplitInterleavedExperts(ModelConfig c) => InterleavedExperts.Split(_byCanonical, _stacked, c);

    private static int RowLength(StoredTensor t) => t.Shape.Length < 2 ? 1 : (int)t.RowLength;
    public void Dispose()
    {
        _store.Dispose();
        foreach (var m in _stacked) m.Dispose();
    }
}
