namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>Qwen2: Llama's decoder with q/k/v biases; RoPE rotates halves (NEOX order) in GGUF too.</summary>
    public static Architecture Qwen2 { get; } = new()
    {
        Name = "qwen2", DisplayName = "Qwen2", HfModelTypes = ["qwen2"], GgufName = "qwen2",
        Roles = Dense(TensorRoles.AttnQBias, TensorRoles.AttnKBias, TensorRoles.AttnVBias),
    };
}
