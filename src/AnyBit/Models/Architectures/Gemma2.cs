namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Gemma 2: RMSNorms scaling by (1 + w) before and after attention and the feed-forward (Hugging Face's
    /// <c>post_attention_layernorm</c> is the post-attention norm, <c>pre_feedforward_layernorm</c> the FFN norm), GeGLU
    /// with the tanh GELU, embeddings scaled by √hidden, attention and final logits soft-capped, queries scaled by
    /// 1/√query_pre_attn_scalar, and a sliding window on even layers (llama.cpp: <c>il % 2 == 0</c>; transformers:
    /// <c>(i + 1) % 2</c>). RoPE rotates halves. llama.cpp's graph scales queries by its 27B rule (46 blocks:
    /// 1/√(hidden/heads)), as GGUF does not store query_pre_attn_scalar.
    /// </summary>
    public static Architecture Gemma2 { get; } = new()
    {
        Name = "gemma2", DisplayName = "Gemma 2", HfModelTypes = ["gemma2"], GgufName = "gemma2",
        Roles = Dense(TensorRoles.AttnPostNorm, TensorRoles.FfnPostNorm),
        DefaultActivation = Activation.GeluTanh, NormWeightOffset = true, ScalesEmbedding = true,
        SlidingWindowAlwaysOn = true, SlidingLayerPeriod = 2, GgufWideQueryScalarLayers = 46,
        HfRoleNames = GemmaNormNames(),
        // The post-norms sit on the residual stream, where rotation and AWQ's norm folding assume none.
        AccuracyMethodsApply = false,
    };

    /// <summary>Gemma 2 and 3's Hugging Face names of the norms around attention.</summary>
    private static Dictionary<TensorRole, string> GemmaNormNames() => new()
    {
        [TensorRoles.AttnPostNorm] = "model.layers.{i}.post_attention_layernorm.weight",
        [TensorRoles.FfnNorm] = "model.layers.{i}.pre_feedforward_layernorm.weight",
    };
}
