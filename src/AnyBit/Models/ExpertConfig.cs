namespace AnyBit.Models;

/// <summary>
/// How a router turns its logits into expert weights: softmax over all experts, a sigmoid of each, or (gpt-oss,
/// llama.cpp's <c>SOFTMAX_WEIGHT</c>) the top k of the raw logits with a softmax over the chosen ones.
/// </summary>
public enum ExpertGating { Softmax, Sigmoid, SoftmaxWeight }

/// <summary>
/// A Mixture-of-Experts feed-forward block (llama.cpp's <c>build_moe_ffn</c>, transformers' sparse MoE blocks): a
/// router picks <see cref="Used"/> of <see cref="Count"/> experts per token, and the block's output is their
/// SwiGLU outputs weighted by the router's probabilities, plus a shared expert's where the model has one.
/// </summary>
public sealed record ExpertConfig
{
    /// <summary>Experts per layer (GGUF <c>expert_count</c>, HF <c>num_local_experts</c> / <c>num_experts</c>).</summary>
    public int Count { get; init; }
    /// <summary>Experts each token is routed to (GGUF <c>expert_used_count</c>, HF <c>num_experts_per_tok</c>).</summary>
    public int Used { get; init; }
    /// <summary>Each expert's intermediate width (GGUF <c>expert_feed_forward_length</c>, HF <c>moe_intermediate_size</c>).</summary>
    public int FfnSize { get; init; }
    /// <summary>The shared expert's intermediate width (Qwen2-MoE); 0 when the model has none.</summary>
    public int SharedFfnSize { get; init; }
    public ExpertGating Gating { get; init; } = ExpertGating.Softmax;
    /// <summary>The selected experts' weights are divided by their sum (HF <c>norm_topk_prob</c>, GGUF <c>expert_weights_norm</c>).</summary>
    public bool NormalizeWeights { get; init; }
    /// <summary>Factor on the selected experts' weights (GGUF <c>expert_weights_scale</c>); 1 for most models.</summary>
    public float WeightsScale { get; init; } = 1;
    /// <summary>
    /// gpt-oss's clamped SwiGLU (llama.cpp's <c>swiglu_oai</c>, transformers' GptOssExperts): gate clamped above at the
    /// limit, up to ±limit, output (up + 1)·gate·σ(1.702·gate). Null: the plain SwiGLU.
    /// </summary>
    public float? SwigluLimit { get; init; }

    /// <summary>Checks the counts; <paramref name="source"/> names the file in the error.</summary>
    public void Validate(string source)
    {
        if (Count <= 0 || Count > 4096) throw new InvalidModelFileException(source, $"expert count {Count} is out of range (1..4096)");
        if (Used <= 0 || Used > Count) throw new InvalidModelFileException(source, $"experts used per token {Used} must be between 1 and the expert count {Count}");
        if (FfnSize <= 0 || FfnSize > 1 << 20) throw new InvalidModelFileException(source, $"expert feed-forward size {FfnSize} is out of range");
        if (SharedFfnSize < 0 || SharedFfnSize > 1 << 20) throw new InvalidModelFileException(source, $"shared expert feed-forward size {SharedFfnSize} is out of range");
        if (!float.IsFinite(WeightsScale) || WeightsScale <= 0) throw new InvalidModelFileException(source, $"expert weights scale {WeightsScale} is invalid");
        if (SwigluLimit is float limit && !(limit > 0 && float.IsFinite(limit))) throw new InvalidModelFileException(source, $"swiglu_limit {limit} must be positive");
    }
}
