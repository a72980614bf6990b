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
            // What each matrix recorded when it was loaded; a reference run replaces every packed matrix's kernel.
            var kernel = w.Packed is not null && model.Kernels == Kernels.Quantized.KernelMode.Reference ? Kernels.KernelChoice.Reference : w.Kernel;
            result.TryAdd(w.StoredType, kernel.ToString());
        }
        return result;
    }
}
