namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Qwen3: Llama's decoder with an RMSNorm on each query and key head (QK-norm) and an explicit head_dim, so
    /// heads × head_dim may differ from the hidden size; RoPE rotates halves.
    /// </summary>
    public static Architecture Qwen3 { get; } = new()
    {
        Name = "qwen3", DisplayName = "Qwen3", HfModelTypes = ["qwen3"], GgufName = "qwen3",
        Roles = Dense(TensorRoles.AttnQNorm, TensorRoles.AttnKNorm),
    };
}
