using AnyBit.Kernels;

namespace AnyBit.Models;

/// <summary>
/// One decoder layer's weights: norms and biases in float32, linear weights float32 or packed. Shapes use D = hidden,
/// Q = heads·head_dim, KV = kv_heads·head_dim, F = ffn. The feed-forward block is either dense (gate, up, down) or
/// a Mixture of Experts (<see cref="Experts"/>).
/// </summary>
public sealed class LayerWeights : IDisposable
{
    public required NativeBuffer AttnNorm { get; init; }   // (D)
    public required LinearWeight Wq { get; init; }         // (Q, D)
    public required LinearWeight Wk { get; init; }         // (KV, D)
    public required LinearWeight Wv { get; init; }         // (KV, D)
    public required LinearWeight Wo { get; init; }         // (D, Q)
    public NativeBuffer? Bq { get; init; }                 // (Q)  Qwen2
    public NativeBuffer? Bk { get; init; }                 // (KV) Qwen2
    public NativeBuffer? Bv { get; init; }                 // (KV) Qwen2
    public NativeBuffer? Bo { get; init; }                 // (D)  llama with attention_bias
    public NativeBuffer? QNorm { get; init; }              // (head_dim) Qwen3
    public NativeBuffer? KNorm { get; init; }              // (head_dim) Qwen3
    public NativeBuffer? AttnSubNorm { get; init; }        // (Q)  BitNet
    public NativeBuffer? AttnPostNorm { get; init; }       // (D)  Gemma 2/3
    public NativeBuffer? AttnSinks { get; init; }          // (heads) gpt-oss: one extra softmax logit per query head
    public required NativeBuffer FfnNorm { get; init; }    // (D)
    public LinearWeight? WGate { get; init; }              // (F, D) dense layers
    public LinearWeight? WUp { get; init; }                // (F, D) dense layers
    public LinearWeight? WDown { get; init; }              // (D, F) dense layers
    public NativeBuffer? FfnSubNorm { get; init; }         // (F)  BitNet
    public ExpertWeights? Experts { get; init; }           // Mixture-of-Experts layers
    public NativeBuffer? FfnPostNorm { get; init; }        // (D)  Gemma 2/3

    public void Dispose()
    {
        foreach (var b in new[] { AttnNorm, Bq, Bk, Bv, Bo, QNorm, KNorm, AttnSubNorm, AttnPostNorm, AttnSinks, FfnNorm, FfnSubNorm, FfnPostNorm })
            b?.Dispose();
        foreach (var w in Linears) w.Dispose();
        Experts?.Dispose();
    }

    /// <summary>The layer's single linear weights (not its experts).</summary>
    public IEnumerable<LinearWeight> Linears => new[] { Wq, Wk, Wv, Wo, WGate, WUp, WDown }.OfType<LinearWeight>()
        .Concat(Experts?.SharedLinears ?? []);
}

/// <summary>
/// A Mixture-of-Experts feed-forward block's weights. E = experts, Fe = each expert's width, Fs = the shared expert's.
/// Each expert's matrices are held separately (slices of the file's 3-D tensors), so that a token reads only its
/// chosen experts' rows.
/// </summary>
public sealed class ExpertWeights : IDisposable
{
    public required LinearWeight Router { get; init; }          // (E, D), float
    public required LinearWeight[] Gate { get; init; }          // E × (Fe, D)
    public required LinearWeight[] Up { get; init; }            // E × (Fe, D)
    public required LinearWeight[] Down { get; init; }          // E × (D, Fe)
    public NativeBuffer? RouterBias { get; init; }              // (E) gpt-oss
    public NativeBuffer? GateBias { get; init; }                // (E, Fe) gpt-oss
    public NativeBuffer? UpBias { get; init; }                  // (E, Fe) gpt-oss
    public NativeBuffer? DownBias { get; init; }                // (E, D) gpt-oss
    public NativeBuffer? SharedGateInput { get; init; }         // (D) Qwen2-MoE: sigmoid(x · w) gates the shared expert
    public LinearWeight? SharedGate { get; init; }              // (Fs, D)
    public LinearWeight? SharedUp { get; init; }                // (Fs, D)
    public LinearWeight? SharedDown { get; init; }              // (D, Fs)

    /// <summary>The shared expert's linears (none for most models).</summary>
    public IEnumerable<LinearWeight> SharedLinears => new[] { SharedGate, SharedUp, SharedDown }.OfType<LinearWeight>();

    /// <summary>Bytes a token reads: the router, <paramref name="used"/> experts and the shared expert.</summary>
    public long BytesPerToken(int used) =>
        Router.ByteLength + SharedLinears.Sum(w => w.ByteLength) + (SharedGateInput?.Length ?? 0) * sizeof(float)
        + used * (Gate[0].ByteLength + Up[0].ByteLength + Down[0].ByteLength);

    public void Dispose()
    {
        Router.Dispose();
        foreach (var w in Gate.Concat(Up).Concat(Down).Concat(SharedLinears)) w.Dispose();
        SharedGateInput?.Dispose();
        RouterBias?.Dispose(); GateBias?.Dispose(); UpBias?.Dispose(); DownBias?.Dispose();
    }
}

/// <summary>All weights of a decoder-only transformer: the embedding (rows copied out per token), linear weights float32 or packed.</summary>
public sealed class TransformerWeights : IDisposable
{
    public required EmbeddingTable TokenEmbedding { get; init; } // (V, D)
    public required LayerWeights[] Layers { get; init; }
    public required NativeBuffer OutputNorm { get; init; }     // (D)
    /// <summary>(V, D); its float32 buffer is the embedding's when embeddings are tied and the head is float.</summary>
    public required LinearWeight Output { get; init; }
    /// <summary>The float head is the embedding buffer itself.</summary>
    public bool OutputIsEmbedding => TokenEmbedding.Float is { } f && ReferenceEquals(Output.Dense, f);
    /// <summary>GGUF's per-frequency RoPE divisors (Llama-3 scaling as llama.cpp stores it), if present.</summary>
    public float[]? RopeFreqFactors { get; init; }
    /// <summary>LongRoPE's divisors (Phi-3), from the file's rope_factors tensors or the config: (head_dim / 2) each.</summary>
    public float[]? RopeFactorsShort { get; init; }
    public float[]? RopeFactorsLong { get; init; }

    /// <summary>
    /// The per-frequency divisors for a session of <paramref name="contextSize"/> positions: Llama-3's, or LongRoPE's
    /// long ones when the context exceeds the original (llama.cpp's choice by context size) and its short ones otherwise.
    /// </summary>
    public float[]? RopeFactorsFor(ModelConfig c, int contextSize) =>
        RopeFreqFactors ?? (contextSize > c.Rope.OriginalMaxPositions ? RopeFactorsLong : RopeFactorsShort);

    /// <summary>Some weight's columns are stored permuted (<see cref="LinearWeight.InputOrder"/>).</summary>
    public bool HasInputOrders => Output.InputOrder is not null || Layers.Any(l => l.Linears.Any(w => w.InputOrder is not null)
        || (l.Experts is { } e && e.Gate.Concat(e.Up).Concat(e.Down).Any(w => w.InputOrder is not null)));

    public void Dispose()
    {
        TokenEmbedding.Dispose();
        Output.Dispose();
        OutputNorm.Dispose();
        foreach (var l in Layers) l.Dispose();
    }
}
