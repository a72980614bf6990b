namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Gemma 3 (text): Gemma 2's block with a (1 + w) RMSNorm on each query and key head, no soft-caps, and five
    /// sliding-window layers to one global (layer l is global when (l + 1) mod 6 = 0). Local layers rotate with their own
    /// base (<c>rope_local_base_freq</c>; llama.cpp fixes 10000) and no scaling, global ones with <c>rope_theta</c> and
    /// <c>rope_scaling</c>. llama.cpp scales queries by 1/√(hidden/heads) at 62 blocks (its 27B rule), else 1/√head_dim.
    /// Hugging Face's text-only checkpoints are <c>gemma3_text</c>.
    /// </summary>
    public static Architecture Gemma3 { get; } = new()
    {
        Name = "gemma3", DisplayName = "Gemma 3", HfModelTypes = ["gemma3_text"], GgufName = "gemma3",
        Roles = Dense(TensorRoles.AttnQNorm, TensorRoles.AttnKNorm, TensorRoles.AttnPostNorm, TensorRoles.FfnPostNorm),
        DefaultActivation = Activation.GeluTanh, NormWeightOffset = true, ScalesEmbedding = true,
        SlidingWindowAlwaysOn = true, SlidingLayerPeriod = 6, GgufLocalRopeTheta = 10000, GgufWideQueryScalarLayers = 62,
        HfRoleNames = GemmaNormNames(),
        AccuracyMethodsApply = false,
    };
}
