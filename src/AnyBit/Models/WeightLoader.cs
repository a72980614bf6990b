using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Models;

/// <summary>
/// Reads every tensor the forward pass needs from <see cref="IModelWeights"/>, checks its shape against the config,
/// and applies BitNet's weight ternarization where the model calls for it.
/// </summary>
public static class WeightLoader
{
    /// <summary>
    /// Loads the weights of <paramref name="c"/> from <paramref name="w"/> (<paramref name="source"/> names the file in
    /// errors). With <paramref name="kernels"/> Fast or Reference, linear weights of a type the integer kernels run are
    /// repacked for them instead of being dequantized. BitNet's layer weights are re-ternarized at load (whatever
    /// they are stored as) and, with <paramref name="int8Activations"/> (the as-trained W1.58A8 recipe) and integer
    /// kernels, packed for the ternary kernel; otherwise they stay float32.
    /// </summary>
    public static TransformerWeights Load(ModelConfig c, IModelWeights w, string source, KernelMode kernels = KernelMode.Float32, bool int8Activations = false)
    {
        int v = c.VocabSize, d = c.HiddenSize;
        bool bitnet = c.Architecture.TernaryWeights;

        void Check(string name, long[] shape)
        {
            if (!w.Contains(name)) throw new InvalidModelFileException(source, $"missing tensor '{name}'");
            var actual = w.Shape(name);
            // Leading 1s aside: Hugging Face stores some vectors as [1, n] (Qwen2-MoE's shared_expert_gate).
            if (!actual.SkipWhile(n => n == 1).SequenceEqual(shape.SkipWhile(n => n == 1)))
                throw new InvalidModelFileException(source, $"tensor '{name}' has shape [{string.Join(", ", actual)}], the config implies [{string.Join(", ", shape)}]");
        }
        NativeBuffer Read(string name, params long[] shape)
        {
            Check(name, shape);
            var values = new NativeBuffer(w.ReadFloat32(name));
            w.Release(name);
            return values;
        }
        NativeBuffer? Optional(string name, params long[] shape) => w.Contains(name) ? Read(name, shape) : null;
        // A 2-D weight's bytes, or with expert ≥ 0 that expert's slice of a 3-D [experts, rows, cols] tensor.
        ReadOnlySpan<byte> Bytes(StoreWeights store, string name, int expert)
        {
            var all = store.Bytes(name);
            if (expert < 0) return all;
            int each = checked((int)(all.Length / store.Tensor(name).Shape[0]));
            return all.Slice(expert * each, each);
        }
        long[] StoredShape(long rows, long cols, int experts) => experts > 0 ? [experts, rows, cols] : [rows, cols];
        PackedMatrix? TryPack(string name, long rows, long cols, int expert = -1, int experts = 0)
        {
            if (kernels == KernelMode.Float32 || bitnet || w is not StoreWeights store || !w.Contains(name)) return null;
            var t = store.Tensor(name);
            if (!PackedMatrix.Supports(t.Format, t.Type) || !t.Shape.SequenceEqual(StoredShape(rows, cols, experts))) return null;
            var packed = PackedMatrix.Create(t.Format, t.Type, (int)rows, (int)cols, Bytes(store, name, expert), keepSource: kernels == KernelMode.Reference);
            if (expert < 0 || expert == experts - 1) w.Release(name);
            return packed;
        }
        NarrowMatrix? Narrow(string name, NativeBuffer values, int rows, int cols, int expert)
        {
            // FP8 blocks kept as stored: MXFP8, or E4M3 with float32 scales (FP8 checkpoints).
            NarrowMatrix? blocks = w is not StoreWeights store ? null : store.Tensor(name).Format switch
            {
                Quantization.MxFormat { MxBlock: 32, Element: { StoredBits: 8, ExponentBits: 4 or 5 } e } =>
                    NarrowMatrix.TryCreateMx(Bytes(store, name, expert), e.ExponentBits == 4 ? NarrowKind.MxE4M3 : NarrowKind.MxE5M2, values.Span, rows, cols),
                Quantization.MinifloatFormat { GroupSize: 32, FloatScale: true, PerChannel: false, Element: { Bits: 8, ExponentBits: 4 } } =>
                    NarrowMatrix.TryCreateScaled(Bytes(store, name, expert), values.Span, rows, cols),
                _ => null,
            };
            if (blocks is not null) return blocks;
            return NarrowMatrix.TryCreate(values.Span, rows, cols);
        }
        string TypeOf(string name) => w is StoreWeights s && s.Contains(name) ? s.Tensor(name).TypeName : "F32";
        LinearWeight Linear(string name, long rows, long cols) =>
            TryPack(name, rows, cols) is { } packed
                ? new LinearWeight(packed) { StoredType = TypeOf(name), InputOrder = ((StoreWeights)w).Tensor(name).InputOrder }
                : FromValues(name, Read(name, rows, cols), rows, cols, expert: -1);
        // A float weight (F32, F16, BF16, or a type the integer kernels do not run, dequantized).
        LinearWeight FromValues(string name, NativeBuffer buffer, long rows, long cols, int expert)
        {
            if (!bitnet)
            {
                // The fast path holds a weight in fewer bits wherever that loses nothing: MXFP8 blocks and FP8
                // blocks with float32 scales as stored, else 16 bits (F16, BF16 and any weight whose values all are
                // 16-bit floats).
                if (kernels == KernelMode.Fast && Narrow(name, buffer, (int)rows, (int)cols, expert) is { } narrow)
                {
                    buffer.Dispose();
                    return new LinearWeight(narrow) { StoredType = TypeOf(name) };
                }
                return new LinearWeight(buffer) { StoredType = TypeOf(name) };
            }
            Ternary.TernarizeInPlace(buffer.Span);
            if (kernels != KernelMode.Float32 && int8Activations
                && Ternary.Pack(buffer.Span, (int)rows, (int)cols, keepSource: kernels == KernelMode.Reference, out float scale) is { } ternary)
            {
                buffer.Dispose();
                return new LinearWeight(ternary) { StoredType = TypeOf(name) + " ternarized", OutputScale = scale };
            }
            return new LinearWeight(buffer) { StoredType = TypeOf(name) };
        }
        // Every expert's weight from the 3-D tensor: packed slices where the integer kernels run its type, else float.
        LinearWeight[] Experts(string name, int experts, long rows, long cols)
        {
            var result = new LinearWeight[experts];
            if (TryPack(name, rows, cols, 0, experts) is { } first)
            {
                result[0] = new LinearWeight(first) { StoredType = TypeOf(name) };
                for (int e = 1; e < experts; e++) result[e] = new LinearWeight(TryPack(name, rows, cols, e, experts)!) { StoredType = TypeOf(name) };
                return result;
            }
            using var all = Read(name, experts, rows, cols);
            long each = rows * cols;
            for (int e = 0; e < experts; e++)
                result[e] = FromValues(name, new NativeBuffer(all.Slice(e * each, checked((int)each))), rows, cols, e);
            return result;
        }

        // Names and shapes come from the role table; optional roles are read when the architecture has them.
        NativeBuffer Vector(TensorRole r, int l) => Read(r.GgufName(l), r.Shape(c));
        NativeBuffer? OptionalVector(TensorRole r, int l) => c.Architecture.Has(r) ? Optional(r.GgufName(l), r.Shape(c)) : null;
        LinearWeight LinearRole(TensorRole r, int l)
        {
            var shape = r.Shape(c);
            return Linear(r.GgufName(l), shape[0], shape[1]);
        }
        LinearWeight[] ExpertRole(TensorRole r, int l)
        {
            var shape = r.Shape(c);
            // Experts of different types (a per-expert mixed-precision plan) are stored apart, under llama.cpp's
            // per-expert names (ExpertStacking leaves them so).
            if (!w.Contains(r.GgufName(l)) && r.GgufPerExpert is not null && w.Contains(r.ExpertName(l, 0)))
                return Enumerable.Range(0, (int)shape[0]).Select(e => Linear(r.ExpertName(l, e), shape[1], shape[2])).ToArray();
            return Experts(r.GgufName(l), (int)shape[0], shape[1], shape[2]);
        }
        ExpertWeights? ExpertsOf(int l)
        {
            if (c.Experts is null) return null;
            bool shared = c.Architecture.Has(TensorRoles.FfnGateShexp);
            return new ExpertWeights
            {
                Router = LinearRole(TensorRoles.FfnGateInp, l),
                RouterBias = OptionalVector(TensorRoles.FfnGateInpBias, l),
                GateBias = OptionalVector(TensorRoles.FfnGateExpsBias, l),
                UpBias = OptionalVector(TensorRoles.FfnUpExpsBias, l),
                DownBias = OptionalVector(TensorRoles.FfnDownExpsBias, l),
                Gate = ExpertRole(TensorRoles.FfnGateExps, l),
                Up = ExpertRole(TensorRoles.FfnUpExps, l),
                Down = ExpertRole(TensorRoles.FfnDownExps, l),
                SharedGateInput = shared ? Vector(TensorRoles.FfnGateInpShexp, l) : null,
                SharedGate = shared ? LinearRole(TensorRoles.FfnGateShexp, l) : null,
                SharedUp = shared ? LinearRole(TensorRoles.FfnUpShexp, l) : null,
                SharedDown = shared ? LinearRole(TensorRoles.FfnDownShexp, l) : null,
            };
        }
        bool dense = c.Experts is null;
        float[]? RopeFactors(TensorRole r)
        {
            if (!c.Architecture.Has(r) || !w.Contains(r.Gguf)) return null;
            using var factors = Read(r.Gguf, r.Shape(c));
            return factors.Span.ToArray();
        }
        var layers = new LayerWeights[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(TensorRoles.AttnNorm, l),
                Wq = LinearRole(TensorRoles.AttnQ, l),
                Wk = LinearRole(TensorRoles.AttnK, l),
                Wv = LinearRole(TensorRoles.AttnV, l),
                Wo = LinearRole(TensorRoles.AttnOutput, l),
                Bq = OptionalVector(TensorRoles.AttnQBias, l),
                Bk = OptionalVector(TensorRoles.AttnKBias, l),
                Bv = OptionalVector(TensorRoles.AttnVBias, l),
                Bo = OptionalVector(TensorRoles.AttnOutputBias, l),
                QNorm = OptionalVector(TensorRoles.AttnQNorm, l),
                KNorm = OptionalVector(TensorRoles.AttnKNorm, l),
                AttnSubNorm = OptionalVector(TensorRoles.AttnSubNorm, l),
                AttnPostNorm = OptionalVector(TensorRoles.AttnPostNorm, l),
                AttnSinks = OptionalVector(TensorRoles.AttnSinks, l),
                FfnNorm = Vector(TensorRoles.FfnNorm, l),
                WGate = dense ? LinearRole(TensorRoles.FfnGate, l) : null,
                WUp = dense ? LinearRole(TensorRoles.FfnUp, l) : null,
                WDown = dense ? LinearRole(TensorRoles.FfnDown, l) : null,
                FfnSubNorm = OptionalVector(TensorRoles.FfnSubNorm, l),
                Experts = ExpertsOf(l),
                FfnPostNorm = OptionalVector(TensorRoles.FfnPostNorm, l),
            };
        }
        string embd = TensorRoles.TokenEmbd.Gguf, output = TensorRoles.Output.Gguf, ropeFreqs = TensorRoles.RopeFreqs.Gguf;
        // Hugging Face ties the head to the embedding whenever the config says so, even if a copy is stored.
        bool tied = c.TiedEmbeddings || !w.Contains(output);
        Check(embd, TensorRoles.TokenEmbd.Shape(c));
        var head = tied ? TryPack(embd, v, d) : null;
        // The integer kernels' sessions keep a quantized embedding as stored (rows decoded at lookup), unless a tied
        // float head needs its floats.
        var embedding = kernels != KernelMode.Float32 && (!tied || head is not null) && w is StoreWeights stored
            && EmbeddingTable.TryKeepStored(stored.Tensor(embd)) is { } rows
            ? rows
            : EmbeddingTable.FromFloat(Vector(TensorRoles.TokenEmbd, -1), d);
        w.Release(embd);
        float[]? freqs = w.Contains(ropeFreqs) ? w.ReadFloat32(ropeFreqs) : null;
        return new TransformerWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            OutputNorm = Vector(TensorRoles.OutputNorm, -1),
            Output = tied
                ? (head is not null
                    ? new LinearWeight(head) { StoredType = TypeOf(embd) }
                    : new LinearWeight(embedding.Float!, owns: false) { StoredType = TypeOf(embd) })
                : LinearRole(TensorRoles.Output, -1),
            RopeFreqFactors = freqs,
            RopeFactorsShort = RopeFactors(TensorRoles.RopeFactorsShort) ?? c.Rope.ShortFactors,
            RopeFactorsLong = RopeFactors(TensorRoles.RopeFactorsLong) ?? c.Rope.LongFactors,
        };
    }
}
