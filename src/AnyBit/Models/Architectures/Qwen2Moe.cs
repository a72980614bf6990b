namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Qwen2-MoE (Qwen1.5-MoE): Qwen2's attention with q/k/v biases; every feed-forward block is routed experts
    /// (softmax, top-k, weights not renormalized) plus a shared expert whose output is gated by sigmoid(x · w).
    /// </summary>
    public static Architecture Qwen2Moe { get; } = new()
    {
        Name = "qwen2moe", DisplayName = "Qwen2-MoE", HfModelTypes = ["qwen2_moe"], GgufName = "qwen2moe",
        Roles = Sparse(TensorRoles.AttnQBias, TensorRoles.AttnKBias, TensorRoles.AttnVBias,
            TensorRoles.FfnGateInpShexp, TensorRoles.FfnGateShexp, TensorRoles.FfnUpShexp, TensorRoles.FfnDownShexp),
    };
}
