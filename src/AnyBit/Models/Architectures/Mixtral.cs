namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Mixtral: Llama's decoder with a Mixture-of-Experts feed-forward block (softmax router, top-k, weights
    /// renormalized over the chosen experts). llama.cpp runs it with its llama graph and reads it from "llama" GGUF files
    /// that have experts (<see cref="Llama"/>), so <c>quantize</c> writes it as "llama".
    /// </summary>
    public static Architecture Mixtral { get; } = new()
    {
        Name = "mixtral", DisplayName = "Mixtral", HfModelTypes = ["mixtral"], GgufName = "mixtral", GgufWriteNameOverride = "llama",
        Roles = Sparse(), GgufAdjacentRopePairs = true, SlidingWindowAlwaysOn = true, NormalizesExpertWeights = true,
    };
}
