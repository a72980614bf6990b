using AnyBit.Models;

namespace AnyBit.Evaluation;

/// <summary>Which kernel runs each stored weight type of a loaded model, for <c>anybit bench</c>.</summary>
public static class KernelReport
{
    public static IReadOnlyDictionary<string, string> Describe(Transformer model)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var linears = model.Weights.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.WGate, l.WUp, l.WDown }).Append(model.Weights.Output);
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
