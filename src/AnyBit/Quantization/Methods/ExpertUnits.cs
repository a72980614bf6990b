using AnyBit.Kernels;
using AnyBit.Models;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// The accuracy pipeline quantizes a Mixture-of-Experts tensor ([experts, rows, columns]) expert by expert: each
/// expert is a unit under its llama.cpp per-expert name (<c>blk.N.ffn_gate.E.weight</c>, <see cref="TensorRole.GgufPerExpert"/>),
/// calibrated on the tokens routed to it and given its own format by the mixed-precision plan. Units of one tensor that
/// end with one format are written as the 3-D tensor again; otherwise each is written under its per-expert name.
/// </summary>
public static class ExpertUnits
{
    /// <summary>The 3-D role, layer and expert of a per-expert name; null for other names.</summary>
    public static (TensorRole Role, int Layer, int Expert)? Parse(string name) => TensorRoles.FromGgufPerExpert(name);

    /// <summary>The role and layer of a stacked expert tensor (<c>blk.N.ffn_gate_exps.weight</c>); null for other names.</summary>
    public static (TensorRole Role, int Layer)? Stacked(string name) =>
        TensorRoles.FromGguf(name) is (TensorRole role, int layer) && role.IsExperts ? (role, layer) : null;

    /// <summary>The stacked tensor a per-expert name belongs to.</summary>
    public static string? StackedOf(string name) => Parse(name) is var (role, layer, _) ? role.GgufName(layer) : null;

    /// <summary>The calibration input of a per-expert unit: its layer, input, and expert.</summary>
    public static (int Layer, LinearInput Input, int Expert)? InputOf(string name) =>
        Parse(name) is var (role, layer, expert) ? (layer, role.Input!.Value, expert) : null;

    /// <summary>The loaded float32 weights of one expert unit.</summary>
    public static NativeBuffer BufferOf(TransformerWeights w, string name)
    {
        var (role, layer, expert) = Parse(name) ?? throw new AnyBitException($"'{name}' is not a per-expert tensor");
        var weights = role.ExpertsOf!(w, layer) ?? throw new AnyBitException($"layer {layer} has no experts for '{name}'");
        if (expert >= weights.Length) throw new AnyBitException($"'{name}': layer {layer} has {weights.Length} experts");
        return weights[expert].F32;
    }
}
