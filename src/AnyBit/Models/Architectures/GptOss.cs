namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// gpt-oss (OpenAI's gpt-oss-20b/120b; llama.cpp's <c>LLM_ARCH_OPENAI_MOE</c>, "gpt-oss" in GGUF): biases on Q, K, V
    /// and the output projection, an attention sink per head (a learned logit in every softmax), a sliding window on
    /// even layers (llama.cpp: <c>il % 2 == 0</c>; transformers' <c>layer_types</c>), YaRN RoPE rotating halves,
    /// queries scaled by 1/√head_dim. Every feed-forward block is routed experts: the router has a bias, the top k of
    /// its raw logits are chosen and softmaxed among themselves (llama.cpp's <c>SOFTMAX_WEIGHT</c>), each expert has
    /// biases and runs the clamped SwiGLU (limit 7, α 1.702, (up + 1)·gate·σ(α·gate)). llama.cpp stores the FFN norm
    /// as <c>post_attention_norm</c>; transformers holds gate and up interleaved in one <c>gate_up_proj</c>.
    /// </summary>
    public static Architecture GptOss { get; } = new()
    {
        Name = "gpt-oss", DisplayName = "gpt-oss", HfModelTypes = ["gpt_oss"], GgufName = "gpt-oss",
        Roles = Sparse(TensorRoles.AttnQBias, TensorRoles.AttnKBias, TensorRoles.AttnVBias, TensorRoles.AttnOutputBias, TensorRoles.AttnSinks,
            TensorRoles.FfnGateInpBias, TensorRoles.FfnGateExpsBias, TensorRoles.FfnUpExpsBias, TensorRoles.FfnDownExpsBias),
        SlidingWindowAlwaysOn = true, SlidingLayerPeriod = 2,
        DefaultExpertGating = ExpertGating.SoftmaxWeight, DefaultSwigluLimit = 7f, HfInterleavedExperts = true,
        GgufRoleNames = new Dictionary<TensorRole, string> { [TensorRoles.FfnNorm] = "blk.{i}.post_attention_norm.weight" },
        HfRoleNames = new Dictionary<TensorRole, string>
        {
            [TensorRoles.FfnGateInp] = "model.layers.{i}.mlp.router.weight",
            [TensorRoles.FfnDownExps] = "model.layers.{i}.mlp.experts.down_proj",
        },
        // Sinks and biases sit where rotation and AWQ's folding assume none.
        AccuracyMethodsApply = false,
    };
}
