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

        NativeBuffer Read(string name, params long[] shape)
        {
            if (!w.Contains(name)) throw new InvalidModelFileException(source, $"missing tensor '{name}'");
            var actual = w.Shape(name);
            if (!actual.SequenceEqual(shape))
                throw new InvalidModelFileException(source, $"tensor '{name}' has shape [{string.Join(", ", actual)}], the config implies [{string.Join(", ", shape)}]");
            return new NativeBuffer(w.ReadFloat32(name));
        }
        NativeBuffer? Optional(string name, params long[] shape) => w.Contains(name) ? Read(name, shape) : null;
        PackedMatrix? TryPack(string name, long rows, long cols)
        {
            if (kernels == KernelMode.Float32 || bitnet || w is not StoreWeights store || !w.Contains(name)) return null;
            var t = store.Tensor(name);
            if (!PackedMatrix.Supports(t.Format, t.Type) || !t.Shape.SequenceEqual([rows, cols])) return null;
            return PackedMatrix.Create(t.Format, t.Type, (int)rows, (int)cols, store.Bytes(name), keepSource: kernels == KernelMode.Reference);
        }
        NarrowMatrix? Narrow(string name, NativeBuffer values, int rows, int cols)
        {
            // FP8 blocks kept as stored: MXFP8, or E4M3 with float32 scales (FP8 checkpoints).
            NarrowMatrix? blocks = w is not StoreWeights store ? null : store.Tensor(name).Format switch
            {
                Quantization.MxFormat { MxBlock: 32, Element: { StoredBits: 8, ExponentBits: 4 or 5 } e } =>
                    NarrowMatrix.TryCreateMx(store.Bytes(name), e.ExponentBits == 4 ? NarrowKind.MxE4M3 : NarrowKind.MxE5M2, values.Span, rows, cols),
                Quantization.MinifloatFormat { GroupSize: 32, FloatScale: true, PerChannel: false, Element: { Bits: 8, ExponentBits: 4 } } =>
                    NarrowMatrix.TryCreateScaled(store.Bytes(name), values.Span, rows, cols),
                _ => null,
            };
            if (blocks is not null) return blocks;
            return NarrowMatrix.TryCreate(values.Span, rows, cols);
        }
        string TypeOf(string name) => w is StoreWeights s && s.Contains(name) ? s.Tensor(name).TypeName : "F32";
        LinearWeight Linear(string name, long rows, long cols)
        {
            if (TryPack(name, rows, cols) is { } packed)
                return new LinearWeight(packed) { StoredType = TypeOf(name), InputOrder = ((StoreWeights)w).Tensor(name).InputOrder };
            var buffer = Read(name, rows, cols);
            if (!bitnet)
            {
                // The fast path holds a weight in fewer bits wherever that loses nothing: MXFP8 blocks and FP8
                // blocks with float32 scales as stored, else 16 bits (F16, BF16 and any weight whose values all are
                // 16-bit floats).
                if (kernels == KernelMode.Fast && Narrow(name, buffer, (int)rows, (int)cols) is { } narrow)
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

        // Names and shapes come from the role table; optional roles are read when the architecture has them.
        NativeBuffer Vector(TensorRole r, int l) => Read(r.GgufName(l), r.Shape(c));
        NativeBuffer? OptionalVector(TensorRole r, int l) => c.Architecture.Has(r) ? Optional(r.GgufName(l), r.Shape(c)) : null;
        LinearWeight LinearRole(TensorRole r, int l)
        {
            var shape = r.Shape(c);
            return Linear(r.GgufName(l), shape[0], shape[1]);
        }
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
                FfnNorm = Vector(TensorRoles.FfnNorm, l),
                WGate = LinearRole(TensorRoles.FfnGate, l),
                WUp = LinearRole(TensorRoles.FfnUp, l),
                WDown = LinearRole(TensorRoles.FfnDown, l),
                FfnSubNorm = OptionalVector(TensorRoles.FfnSubNorm, l),
                FfnPostNorm = OptionalVector(TensorRoles.FfnPostNorm, l),
            };
        }
        string embd = TensorRoles.TokenEmbd.Gguf, output = TensorRoles.Output.Gguf, ropeFreqs = TensorRoles.RopeFreqs.Gguf;
        var embedding = Vector(TensorRoles.TokenEmbd, -1);
        // Hugging Face ties the head to the embedding whenever the config says so, even if a copy is stored.
        bool tied = c.TiedEmbeddings || !w.Contains(output);
        float[]? freqs = w.Contains(ropeFreqs) ? w.ReadFloat32(ropeFreqs) : null;
        return new TransformerWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            OutputNorm = Vector(TensorRoles.OutputNorm, -1),
            Output = tied
                ? (TryPack(embd, v, d) is { } head
                    ? new LinearWeight(head) { StoredType = TypeOf(embd) }
                    : new LinearWeight(embedding, owns: false) { StoredType = TypeOf(embd) })
                : LinearRole(TensorRoles.Output, -1),
            RopeFreqFactors = freqs,
            RopeFactorsShort = RopeFactors(TensorRoles.RopeFactorsShort) ?? c.Rope.ShortFactors,
            RopeFactorsLong = RopeFactors(TensorRoles.RopeFactorsLong) ?? c.Rope.LongFactors,
        };
    }
}
