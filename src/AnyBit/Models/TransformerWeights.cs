using AnyBit.Kernels;

namespace AnyBit.Models;

/// <summary>One decoder layer's weights, in float32. Shapes use D = hidden, Q = heads·head_dim, KV = kv_heads·head_dim, F = ffn.</summary>
public sealed class LayerWeights : IDisposable
{
    public required NativeBuffer AttnNorm { get; init; }   // (D)
    public required NativeBuffer Wq { get; init; }         // (Q, D)
    public required NativeBuffer Wk { get; init; }         // (KV, D)
    public required NativeBuffer Wv { get; init; }         // (KV, D)
    public required NativeBuffer Wo { get; init; }         // (D, Q)
    public NativeBuffer? Bq { get; init; }                 // (Q)  Qwen2
    public NativeBuffer? Bk { get; init; }                 // (KV) Qwen2
    public NativeBuffer? Bv { get; init; }                 // (KV) Qwen2
    public NativeBuffer? Bo { get; init; }                 // (D)  llama with attention_bias
    public NativeBuffer? QNorm { get; init; }              // (head_dim) Qwen3
    public NativeBuffer? KNorm { get; init; }              // (head_dim) Qwen3
    public NativeBuffer? AttnSubNorm { get; init; }        // (Q)  BitNet
    public required NativeBuffer FfnNorm { get; init; }    // (D)
    public required NativeBuffer WGate { get; init; }      // (F, D)
    public required NativeBuffer WUp { get; init; }        // (F, D)
    public required NativeBuffer WDown { get; init; }      // (D, F)
    public NativeBuffer? FfnSubNorm { get; init; }         // (F)  BitNet

    public void Dispose()
    {
        foreach (var b in new[] { AttnNorm, Wq, Wk, Wv, Wo, Bq, Bk, Bv, Bo, QNorm, KNorm, AttnSubNorm, FfnNorm, WGate, WUp, WDown, FfnSubNorm })
            b?.Dispose();
    }
}

/// <summary>All weights of a decoder-only transformer, decoded to float32 for the reference forward pass.</summary>
public sealed class TransformerWeights : IDisposable
{
    public required NativeBuffer TokenEmbedding { get; init; } // (V, D)
    public required LayerWeights[] Layers { get; init; }
    public required NativeBuffer OutputNorm { get; init; }     // (D)
    /// <summary>(V, D); the same buffer as <see cref="TokenEmbedding"/> when embeddings are tied.</summary>
    public required NativeBuffer Output { get; init; }
    /// <summary>GGUF's per-frequency RoPE divisors (Llama-3 scaling as llama.cpp stores it), if present.</summary>
    public float[]? RopeFreqFactors { get; init; }

    public void Dispose()
    {
        TokenEmbedding.Dispose();
        if (!ReferenceEquals(Output, TokenEmbedding)) Output.Dispose();
        OutputNorm.Dispose();
        foreach (var l in Layers) l.Dispose();
    }
}
