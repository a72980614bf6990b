namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// BitNet b1.58: ternary layer weights and int8 per-token activations as trained (W1.58A8), squared-ReLU
    /// feed-forward, and sub-norms before attn_output and ffn_down. GPTQ, AWQ and rotation do not apply: the weights
    /// are ternarized as trained, and a rotation does not commute with the int8 activations and sub-norms.
    /// bitnet.cpp's fork names its BitNet graphs "bitnet-b1.58" (what its converter writes for BitNetForCausalLM, and
    /// the name of its official 2B-4T file; relu², sub-norms), "bitnet-25" (the same graph) and "bitnet" (llama.cpp's
    /// name, its older files), all with llama.cpp's tensor names and NEOX RoPE (Q/K rows as Hugging Face stores them).
    /// </summary>
    public static Architecture BitNet { get; } = new()
    {
        Name = "bitnet", DisplayName = "BitNet", HfModelTypes = ["bitnet"], GgufName = "bitnet",
        BitnetCppGgufNames = ["bitnet-b1.58", "bitnet-25", "bitnet"],
        Roles = Dense(TensorRoles.AttnSubNorm, TensorRoles.FfnSubNorm),
        DefaultActivation = Activation.ReluSquared, TernaryWeights = true, Int8Activations = true, AccuracyMethodsApply = false,
    };
}
