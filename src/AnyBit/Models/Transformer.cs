using AnyBit.Kernels;
using AnyBit.Text;

namespace AnyBit.Models;

/// <summary>How linear-layer inputs are treated: as floats, or quantized to int8 per token as BitNet b1.58 was trained.</summary>
public enum ActivationMode { Float, Int8PerToken }

/// <summary>
/// A loaded model: config, weights and tokenizer. Immutable once built; every generation or evaluation runs in an
/// <see cref="InferenceSession"/> that owns its own KV cache, so several can share one model.
/// </summary>
public sealed class Transformer : IDisposable
{
    public Transformer(ModelConfig config, TransformerWeights weights, ITokenizer? tokenizer, ActivationMode activations, string source)
    {
        Config = config; Weights = weights; Tokenizer = tokenizer; Activations = activations; Source = source;
    }

    public ModelConfig Config { get; }
    public TransformerWeights Weights { get; }
    public ITokenizer? Tokenizer { get; }
    public ActivationMode Activations { get; }
    /// <summary>How conversations become prompts: the model's own template, or ChatML when it has none.</summary>
    public ChatTemplate ChatTemplate { get; init; } = ChatTemplate.ChatML();
    /// <summary>Which kernels run the packed weights.</summary>
    public Kernels.Quantized.KernelMode Kernels { get; init; } = AnyBit.Kernels.Quantized.KernelMode.Fast;
    /// <summary>Path the model came from.</summary>
    public string Source { get; }

    /// <summary>
    /// A new session with a KV cache for <paramref name="contextSize"/> positions, stored as <paramref name="cache"/>
    /// says (default float32).
    /// </summary>
    public InferenceSession CreateSession(int contextSize, int maxBatch = 256, WorkerPool? pool = null, Inference.KvCacheOptions? cache = null)
    {
        if (contextSize <= 0) throw new AnyBitException($"context size {contextSize} must be positive");
        return new InferenceSession(this, contextSize, maxBatch, pool ?? WorkerPool.Shared, cache);
    }

    public void Dispose() => Weights.Dispose();
}
