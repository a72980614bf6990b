namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Qwen3-MoE (Qwen3-30B-A3B): Qwen3's attention (per-head QK-norm, explicit head_dim); every feed-forward block is
    /// routed experts, softmax then top-k, weights renormalized (llama.cpp always does; transformers with
    /// <c>norm_topk_prob</c>, which the published configs set).
    /// </summary>
    public static Architecture Qwen3Moe { get; } = new()
    {
        Name = "qwen3moe", DisplayName = "Qwen3-MoE", HfModelTypes = ["qwen3_moe"], GgufName = "qwen3moe",
        Roles = Sparse(TensorRoles.AttnQNorm, TensorRoles.AttnKNorm), NormalizesExpertWeights = true,
    };
}
