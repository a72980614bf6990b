using AnyBit.Models;

namespace AnyBit.Evaluation;

/// <summary>Which kernel runs each stored weight type of a loaded model, for <c>anybit bench</c>.</summary>
public static class KernelReport
{
    public static IReadOnlyDictionary<string, string> Describe(Transformer model)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var weights = model.Weights;
        var linears = weights.Layers.SelectMany(l => l.Linears.Concat(l.Experts is { } e ? e.Gate.Concat(e.Up).Concat(e.Down) : [])).Append(weights.Output);
        foreach (var w in linears)
        {
            // What each matrix recorded when it was loaded; a reference run replaces every packed matrix's kernel.
            var kernel = w.Packed is not null && model.Kernels == Kernels.Quantized.KernelMode.Reference ? Kernels.KernelChoice.Reference : w.Kernel;
            result.TryAdd(w.StoredType, kernel.ToString());
        }
        return result;
    }
}
