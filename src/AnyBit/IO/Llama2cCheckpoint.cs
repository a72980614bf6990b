using System.Buffers.Binary;
using AnyBit.Models;

namespace AnyBit.IO;

/// <summary>
/// Karpathy's llama2.c checkpoints. Three layouts exist:
/// <list type="bullet">
/// <item>legacy (v0): seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
/// vocab_size means the classifier is not shared), then float32 weights in run.c's order, including two RoPE
/// tables that are skipped;</item>
/// <item>v1: magic "ak42", version 1, the same seven ints, a shared-classifier byte, padding to 256 bytes, then
/// float32 weights with all norms first;</item>
/// <item>v2: as v1 plus an int32 group size; norms in float32, then every matrix as int8 values followed by one
/// float32 scale per group (Q8_0-style, w = q·s).</item>
/// </list>
/// Weights are exposed under GGUF tensor names; RoPE pairs are interleaved as in run.c.
/// </summary>
public sealed class Llama2cCheckpoint : IModelWeights
{
    private const uint MagicAk42 = 0x616b3432;
    private readonly MappedFile _file;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly List<WeightInfo> _list = new();

    private sealed record Entry(long[] Shape, long Offset, bool Int8Groups, long ScaleOffset);

    public ModelConfig Config { get; }
    /// <summary>0 (legacy), 1 or 2.</summary>
    public int Version { get; }
    public int GroupSize { get; }
    public IReadOnlyList<WeightInfo> Weights => _list;
    public bool Contains(string name) => _entries.ContainsKey(name);

    private Llama2cCheckpoint(MappedFile file, ModelConfig config, int version, int groupSize)
    {
        _file = file; Config = config; Version = version; GroupSize = groupSize;
    }

    public static Llama2cCheckpoint Open(string path)
    {
        var file = new MappedFile(path);
        try
        {
            return Parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static Llama2cCheckpoint Parse(MappedFile file)
    {
        InvalidModelFileException Bad(string p) => new(file.Path, p);
        if (file.Length < 28) throw Bad($"too short for a llama2.c checkpoint ({file.Length} bytes)");
        var head = file.Span(0, Math.Min(256, (int)Math.Min(file.Length, 256)));
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(head);
        int version = 0, groupSize = 0;
        bool shared;
        int p = 0;
        long dataStart;
        int[] h = new int[7];
        if (magic == MagicAk42)
        {
            if (file.Length < 256) throw Bad("truncated llama2.c v1/v2 header");
            version = BinaryPrimitives.ReadInt32LittleEndian(head[4..]);
            if (version is not (1 or 2)) throw Bad($"unsupported llama2.c checkpoint version {version} (0, 1 and 2 are read)");
            p = 8;
            for (int i = 0; i < 7; i++, p += 4) h[i] = BinaryPrimitives.ReadInt32LittleEndian(head[p..]);
            byte sharedByte = head[p++];
            if (sharedByte > 1) throw Bad($"shared-classifier flag {sharedByte} is neither 0 nor 1");
            shared = sharedByte == 1;
            if (version == 2)
            {
                groupSize = BinaryPrimitives.ReadInt32LittleEndian(head[p..]);
                if (groupSize <= 0 || groupSize > 1 << 16) throw Bad($"group size {groupSize} is invalid");
            }
            dataStart = 256;
        }
        else
        {
            for (int i = 0; i < 7; i++, p += 4) h[i] = BinaryPrimitives.ReadInt32LittleEndian(head[p..]);
            shared = h[5] > 0;
            h[5] = Math.Abs(h[5]);
            dataStart = 28;
        }
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocab = h[5], seqLen = h[6];
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0 || dim % heads != 0)
            throw Bad($"header values (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}, kv heads {kvHeads}, vocab {vocab}, seq_len {seqLen}) are not a valid model (not a llama2.c checkpoint?)");
        var config = new ModelConfig
        {
            Architecture = Architecture.OfLlama2c,
            HiddenSize = dim, IntermediateSize = hidden, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
            HeadDim = dim / heads, VocabSize = vocab, MaxPositions = seqLen, RmsNormEps = 1e-5f,
            Rope = new RopeConfig { Theta = 10000, Interleaved = true }, // run.c rotates adjacent pairs
            TiedEmbeddings = shared, BosTokenId = 1, EosTokenIds = [2],
        };
        config.Validate(file.Path);
        if (version == 2 && dim % groupSize != 0) throw Bad($"group size {groupSize} does not divide dim {dim}");

        var ckpt = new Llama2cCheckpoint(file, config, version, groupSize);
        long off = dataStart;
        void F32(string name, long[] shape)
        {
            ckpt.Add(name, shape, off, false, 0);
            off += TensorTypes.ElementCount(shape) * 4;
        }
        void Matrix(string name, long[] shape)
        {
            if (version == 2)
            {
                long n = TensorTypes.ElementCount(shape);
                if (n % groupSize != 0) throw Bad($"{name}: {n} weights are not a whole number of {groupSize}-groups");
                ckpt.Add(name, shape, off, true, off + n);
                off += n + n / groupSize * 4;
            }
            else F32(name, shape);
        }
        // The file's layout in llama2.c's field names; names and shapes come from the role table.
        void Fields(params string[] fields)
        {
            foreach (string field in fields)
            {
                var role = TensorRoles.FromLlama2c(field);
                var shape = role.Shape(config);
                for (int l = 0; l < (role.PerLayer ? layers : 1); l++)
                {
                    if (role.IsQuantizable) Matrix(role.GgufName(l), shape);
                    else F32(role.GgufName(l), shape);
                }
            }
        }

        if (version == 0)
        {
            Fields("token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo", "rms_ffn_weight", "w1", "w2", "w3", "rms_final_weight");
            off += (long)seqLen * (dim / heads) * 4; // freq_cis_real and freq_cis_imag: unused, RoPE is recomputed
            if (!shared) Fields("wcls");
        }
        else
        {
            Fields("rms_att_weight", "rms_ffn_weight", "rms_final_weight");
            Fields("token_embedding_table", "wq", "wk", "wv", "wo", "w1", "w2", "w3");
            if (!shared) Fields("wcls");
        }
        if (off > file.Length)
            throw Bad($"file holds {file.Length} bytes but the header's shapes need {off}: truncated, or the header is wrong");
        return ckpt;
    }

    private void Add(string name, long[] shape, long offset, bool int8, long scaleOffset)
    {
        _entries[name] = new Entry(shape, offset, int8, scaleOffset);
        long n = TensorTypes.ElementCount(shape);
        _list.Add(new WeightInfo(name, shape, int8 ? $"Q8 (int8, group {GroupSize})" : "F32",
            int8 ? n + n / GroupSize * 4 : n * 4));
    }

    public float[] ReadFloat32(string name)
    {
        if (!_entries.TryGetValue(name, out var e)) throw new InvalidModelFileException(_file.Path, $"no tensor '{name}'");
        long n = TensorTypes.ElementCount(e.Shape);
        var result = new float[n];
        if (!e.Int8Groups)
        {
            TensorDecoder.Decode(TensorType.F32, _file.Span(e.Offset, checked((int)(n * 4))), result);
            return result;
        }
        var q = _file.Span(e.Offset, checked((int)n));
        var scales = _file.Span(e.ScaleOffset, checked((int)(n / GroupSize * 4)));
        for (long i = 0; i < n; i++)
        {
            float s = BinaryPrimitives.ReadSingleLittleEndian(scales[(int)(i / GroupSize * 4)..]);
            result[i] = (sbyte)q[(int)i] * s;
        }
        return result;
    }

    public long[] Shape(string name) => _entries[name].Shape;

    public void Dispose() => _file.Dispose();
}
