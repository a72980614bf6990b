namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Mistral: Llama's decoder with a sliding attention window, which its Hugging Face config applies without
    /// <c>use_sliding_window</c>. llama.cpp runs it with the llama graph, so <c>quantize</c> writes it as "llama".
    /// </summary>
    public static Architecture Mistral { get; } = new()
    {
        Name = "mistral", DisplayName = "Mistral", HfModelTypes = ["mistral"], GgufName = "mistral", GgufWriteNameOverride = "llama",
        Roles = Dense(TensorRoles.AttnQBias, TensorRoles.AttnKBias, TensorRoles.AttnVBias, TensorRoles.AttnOutputBias),
        GgufAdjacentRopePairs = true, SlidingWindowAlwaysOn = true,
    };
}
