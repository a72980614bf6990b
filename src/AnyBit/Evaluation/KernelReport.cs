using AnyBit.Models;

namespace AnyBit.Evaluation;

/// <summary>Which kernel runs each stored weight type of a loaded model, for <c>anybit bench</c>.</summary>
public static class KernelReport
{
    public static IReadOnlyDictionary<string, string> Describe(Transformer model)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var weights = model.Weights;
        var linears = Enumerable.Range(0, weights.Layers.Length).SelectMany(l => TensorRoles.LayerLinears.Select(r => r.LinearOf!(weights, l))).Append(weights.Output);
        foreach (var w in linears)
        {
            string kernel = w.Packed is { } p
                ? (model.Kernels == Kernels.Quantized.KernelMode.Reference ? "int8 scalar reference" : p.KernelPath)
                : w.Narrow is { } h ? $"{h.Kind} weights widened as loaded, f32 4x4 tiles (exact)"
                : "f32 GEMM (dequantized at load, 4x4 Vector512 tiles)";
            result.TryAdd(w.StoredType, kernel);
        }
        return result;
    }
}
