using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// The float32 model the accuracy methods calibrate and edit, built in memory from a quantization plan: each planned
/// tensor's source (in llama.cpp's conventions: Q/K permuted for GGUF llama, BitNet ternarized) is read once into
/// the loaded weights, and the config and tokenizer are read, by the GGUF readers, from the metadata the output file
/// will carry. So calibration sees the model the output file describes, exactly as if it had been written as f32 and
/// loaded back, without that detour.
/// </summary>
public static class FloatModel
{
    public static Transformer Load(QuantPlan plan, string source)
    {
        var writer = new GgufWriter();
        plan.WriteMetadata(writer);
        var weights = new PlannedWeights(plan);
        var metadata = writer.PendingMetadata(name => weights.Contains(name) ? weights.Shape(name) : null, source);
        var config = GgufConfigReader.Read(metadata);
        var tokenizer = GgufTokenizer.TryLoad(metadata);
        var mode = config.Architecture.Int8Activations ? ActivationMode.Int8PerToken : ActivationMode.Float;
        // Float kernels: rotation, AWQ and GPTQ edit the float32 weights in place (the fast path may hold them in 16 bits).
        var loaded = WeightLoader.Load(config, weights, source, KernelMode.Float32, int8Activations: mode == ActivationMode.Int8PerToken);
        return new Transformer(config, loaded, tokenizer, mode, source) { Kernels = KernelMode.Float32 };
    }

    /// <summary>A plan's tensors as model weights: each read decodes its source anew.</summary>
    private sealed class PlannedWeights(QuantPlan plan) : IModelWeights
    {
        private readonly Dictionary<string, PlannedTensor> _byName = plan.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);

        public IReadOnlyList<WeightInfo> Weights { get; } =
            plan.Tensors.Select(t => new WeightInfo(t.Name, t.Shape, "F32", TensorTypes.ElementCount(t.Shape) * sizeof(float))).ToList();
        public bool Contains(string name) => _byName.ContainsKey(name);
        public long[] Shape(string name) => _byName[name].Shape;
        public float[] ReadFloat32(string name) => _byName[name].Source();
        public void Dispose() { }
    }
}
