namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// OLMoE: Llama's decoder with an RMSNorm over each whole query and key projection (not per head) before RoPE,
    /// which rotates halves; every feed-forward block is routed experts, softmax then top-k, weights not renormalized.
    /// </summary>
    public static Architecture Olmoe { get; } = new()
    {
        Name = "olmoe", DisplayName = "OLMoE", HfModelTypes = ["olmoe"], GgufName = "olmoe",
        Roles = Sparse(TensorRoles.AttnQNorm, TensorRoles.AttnKNorm), QkNormAcrossHeads = true,
    };
}
