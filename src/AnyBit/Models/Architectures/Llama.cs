namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Llama 1–3 (and llama2.c checkpoints): pre-norm decoder, SwiGLU, RoPE. Attention biases appear with
    /// <c>attention_bias</c>. llama.cpp's graph rotates adjacent pairs, so its GGUF Q/K rows are permuted. A "llama"
    /// GGUF file with <c>llama.expert_count</c> is Mixtral (llama.cpp's llama graph has its experts), so the experts'
    /// roles are here too.
    /// </summary>
    public static Architecture Llama { get; } = new()
    {
        Name = "llama", DisplayName = "Llama", HfModelTypes = ["llama"], GgufName = "llama",
        Roles = Dense(TensorRoles.AttnQBias, TensorRoles.AttnKBias, TensorRoles.AttnVBias, TensorRoles.AttnOutputBias,
            TensorRoles.FfnGateInp, TensorRoles.FfnGateExps, TensorRoles.FfnUpExps, TensorRoles.FfnDownExps),
        GgufAdjacentRopePairs = true, NormalizesExpertWeights = true,
    };

    /// <summary>The family of llama2.c checkpoints, whose header names none: Karpathy's run.c is Llama.</summary>
    public static Architecture OfLlama2c => Llama;

    /// <summary>The family <c>anybit synth</c> writes: the most common shape, which llama.cpp runs too.</summary>
    public static Architecture OfSyntheticModels => Llama;
}
