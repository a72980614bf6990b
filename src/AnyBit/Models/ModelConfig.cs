namespace AnyBit.Models;

/// <summary>Feed-forward activation: SwiGLU's SiLU, BitNet's squared ReLU, or Gemma's GeGLU (GELU, tanh approximation).</summary>
public enum Activation { Silu, ReluSquared, GeluTanh }

/// <summary>How rotary embedding frequencies are rescaled for long context.</summary>
public enum RopeScalingType { None, Linear, Llama3, LongRope, Yarn }

/// <summary>RoPE parameters (Hugging Face <c>rope_parameters</c> / <c>rope_scaling</c>, or GGUF <c>rope.*</c>).</summary>
public sealed record RopeConfig
{
    public double Theta { get; init; } = 10000.0;
    public RopeScalingType Scaling { get; init; } = RopeScalingType.None;
    public double Factor { get; init; } = 1.0;
    public double LowFreqFactor { get; init; } = 1.0;
    public double HighFreqFactor { get; init; } = 4.0;
    /// <summary>The pre-training context that Llama-3 scaling is relative to (<c>original_max_position_embeddings</c>).</summary>
    public int OriginalMaxPositions { get; init; } = 8192;
    /// <summary>
    /// Rotation pairs: true for adjacent pairs (2i, 2i+1) as GGUF "llama" and llama2.c store Q/K; false for the
    /// halves (i, i + d/2) of Hugging Face's rotate_half.
    /// </summary>
    public bool Interleaved { get; init; }
    /// <summary>Multiplier of cos and sin (LongRoPE's √(1 + ln(s)/ln(original)), llama.cpp's <c>rope.scaling.attn_factor</c>).</summary>
    public double AttentionFactor { get; init; } = 1.0;
    /// <summary>
    /// LongRoPE's per-frequency divisors (Phi-3 <c>rope_scaling.short_factor</c> / <c>long_factor</c>; GGUF stores them as
    /// <c>rope_factors_short.weight</c> / <c>rope_factors_long.weight</c>): the short ones for a context up to
    /// <see cref="OriginalMaxPositions"/>, the long ones beyond, as llama.cpp chooses by context size.
    /// </summary>
    public float[]? ShortFactors { get; init; }
    public float[]? LongFactors { get; init; }
    /// <summary>
    /// YaRN's correction range (gpt-oss): the frequencies that turn fewer than <see cref="BetaFast"/> times over the
    /// original context keep their angle, those that turn more than <see cref="BetaSlow"/> times are divided by
    /// <see cref="Factor"/>, with a linear ramp between (ggml's <c>rope_yarn</c>, transformers' <c>_compute_yarn_parameters</c>).
    /// </summary>
    public double BetaFast { get; init; } = 32.0;
    public double BetaSlow { get; init; } = 1.0;
    /// <summary>
    /// YaRN's correction range is rounded outwards to whole dimensions (ggml always; transformers unless the config
    /// says <c>truncate: false</c>).
    /// </summary>
    public bool YarnTruncate { get; init; } = true;
}

/// <summary>Everything the forward pass needs to know about a model's shape and numerics.</summary>
public sealed record ModelConfig
{
    /// <summary>The family's descriptor: its names and the choices of its forward pass, read as flags.</summary>
    public required Architecture Architecture { get; init; }
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    /// <summary>Per-head width; Qwen3 sets it explicitly so that heads × head_dim differs from hidden size.</summary>
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositions { get; init; }
    public float RmsNormEps { get; init; } = 1e-5f;
    public RopeConfig Rope { get; init; } = new();
    public Activation Activation { get; init; } = Activation.Silu;
    public bool TiedEmbeddings { get; init; }
    /// <summary>Mistral's sliding attention window; null means full attention.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>The feed-forward blocks are Mixtures of Experts; null for a dense model.</summary>
    public ExpertConfig? Experts { get; init; }
    /// <summary>Gemma 2's attention-score soft-cap c (scores become c·tanh(s/c)); null for none.</summary>
    public float? AttnLogitSoftcap { get; init; }
    /// <summary>Gemma 2's final logit soft-cap; null for none.</summary>
    public float? FinalLogitSoftcap { get; init; }
    /// <summary>Gemma's <c>query_pre_attn_scalar</c>: scores are scaled by its inverse square root (null: the head dimension's).</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>RoPE of the sliding-window layers where it differs from <see cref="Rope"/> (Gemma 3's local base); null when it does not.</summary>
    public RopeConfig? LocalRope { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];

    /// <summary>Width of the concatenated query heads.</summary>
    public int QueryWidth => NumHeads * HeadDim;
    /// <summary>Width of the concatenated key (or value) heads.</summary>
    public int KvWidth => NumKvHeads * HeadDim;

    /// <summary>Score multiplier of attention: 1/√query_pre_attn_scalar, or 1/√head_dim.</summary>
    public float AttentionScale => 1f / MathF.Sqrt((float)(QueryPreAttnScalar ?? HeadDim));

    /// <summary>
    /// Layer <paramref name="layer"/> attends within <see cref="SlidingWindow"/>: every layer, or for families that
    /// alternate (<see cref="Architecture.SlidingLayerPeriod"/> p) the layers l with (l + 1) mod p ≠ 0.
    /// </summary>
    public bool IsSlidingLayer(int layer) =>
        SlidingWindow is > 0 && (Architecture.SlidingLayerPeriod is not int p || (layer + 1) % p != 0);

    /// <summary>The attention window of layer <paramref name="layer"/>; null for full attention.</summary>
    public int? WindowOf(int layer) => IsSlidingLayer(layer) ? SlidingWindow : null;

    /// <summary>Checks internal consistency; <paramref name="source"/> names the file in the error.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string what)
        {
            if (!ok) throw new InvalidModelFileException(source, what);
        }
        Require(HiddenSize > 0 && HiddenSize <= 1 << 17, $"hidden size {HiddenSize} is out of range");
        Require(IntermediateSize > 0 && IntermediateSize <= 1 << 20, $"intermediate size {IntermediateSize} is out of range");
        Require(NumLayers > 0 && NumLayers <= 1024, $"layer count {NumLayers} is out of range");
        Require(NumHeads > 0 && NumHeads <= 1024, $"head count {NumHeads} is out of range");
        Require(NumKvHeads > 0 && NumHeads % NumKvHeads == 0, $"key/value head count {NumKvHeads} does not divide the head count {NumHeads}");
        Require(HeadDim > 0 && HeadDim % 2 == 0 && HeadDim <= 4096, $"head dimension {HeadDim} must be positive and even");
        Require(VocabSize > 0 && VocabSize <= 1 << 24, $"vocabulary size {VocabSize} is out of range");
        Require(MaxPositions > 0, $"context length {MaxPositions} is out of range");
        Require(RmsNormEps > 0 && float.IsFinite(RmsNormEps), $"rms_norm_eps {RmsNormEps} is invalid");
        Require(Rope.Theta > 0 && double.IsFinite(Rope.Theta), $"rope theta {Rope.Theta} is invalid");
        Experts?.Validate(source);
        Require(AttnLogitSoftcap is null or > 0 && FinalLogitSoftcap is null or > 0, "logit soft-caps must be positive");
        Require(QueryPreAttnScalar is null or > 0, $"query_pre_attn_scalar {QueryPreAttnScalar} must be positive");
        Require(LocalRope is null || LocalRope.Theta > 0 && double.IsFinite(LocalRope.Theta), $"local rope theta {LocalRope?.Theta} is invalid");
        foreach (var factors in new[] { Rope.ShortFactors, Rope.LongFactors })
            Require(factors is null || factors.Length == HeadDim / 2 && factors.All(f => f > 0 && float.IsFinite(f)),
                $"LongRoPE factors must be {HeadDim / 2} positive numbers (head_dim / 2)");
    }
}
