namespace AnyBit.Models;

public sealed partial class Architecture
{
    /// <summary>
    /// Phi-3: Llama's decoder with Q, K and V fused in one matrix (<c>qkv_proj</c>, llama.cpp's <c>attn_qkv</c>) and gate
    /// and up fused in one (<c>gate_up_proj</c>, gate rows first; llama.cpp's [2F, D] <c>ffn_up</c>), both split into their
    /// parts at load and fused again by <c>quantize</c>; a sliding window its config applies without
    /// <c>use_sliding_window</c>; LongRoPE ("longrope", formerly "su") scaling, whose factors GGUF stores as
    /// <c>rope_factors_short/long</c>. RoPE rotates halves. GPTQ, AWQ and rotation are not wired to the fused tensors.
    /// </summary>
    public static Architecture Phi3 { get; } = new()
    {
        Name = "phi3", DisplayName = "Phi-3", HfModelTypes = ["phi3"], GgufName = "phi3",
        Roles = Dense(TensorRoles.RopeFactorsLong, TensorRoles.RopeFactorsShort),
        FusedRoles = [TensorRoles.AttnQkv, TensorRoles.FfnGateUp],
        SlidingWindowAlwaysOn = true,
        AccuracyMethodsApply = false,
    };
}
