using AnyBit.Kernels;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// GPTQ as its reference runs it: layer by layer, each layer's Hessians measured on the calibration inputs that the
/// already-quantized layers before it produce, so a layer's error compensation also absorbs the error those layers
/// passed on. After a layer is quantized its weights in the float model are replaced by the quantized values; the
/// output head (layer −1) goes last.
/// </summary>
internal static class SequentialGptq
{
    /// <summary>One weight to quantize: its index in the plan, name, the (layer, input) it reads, its float buffer in the model,
    /// and its columns' importance (what fixed block parameters are fitted with, <see cref="ColumnRounders"/>).</summary>
    public sealed record Job(int Index, string Name, int Layer, LinearInput Input, NativeBuffer Buffer, TensorFormat Format, int Rows, int Columns, float[]? Importance);

    public static Dictionary<string, byte[]> Run(Transformer model, IReadOnlyList<int[]> windows, IReadOnlyList<Job> jobs, GptqOptions options,
        Action<string>? status, CancellationToken cancellation)
    {
        var encoded = new Dictionary<string, byte[]>();
        // Layers in forward order, the head (−1) after the last.
        foreach (var layer in jobs.GroupBy(j => j.Layer).OrderBy(g => g.Key < 0 ? int.MaxValue : g.Key))
        {
            cancellation.ThrowIfCancellationRequested();
            status?.Invoke(layer.Key < 0 ? "GPTQ: output head" : $"GPTQ: layer {layer.Key + 1} of {model.Config.NumLayers}");
            var stats = ActivationStatistics.Collect(model, windows, null, cancellation, layer.Key);
            var factors = new Dictionary<LinearInput, (double[] Factor, bool[] Dead, int[]? Order)>();
            // Every weight of the layer is quantized from the same inputs before any is written back (q, k, v share theirs;
            // the inputs of attn_output and ffn_down were measured with this layer's weights still in float).
            var results = new List<(Job Job, float[] Values)>();
            foreach (var job in layer)
            {
                if (!factors.TryGetValue(job.Input, out var f))
                {
                    var h = stats.For(job.Layer, job.Input).Hessian;
                    int[]? order = options.ActOrder ? Gptq.ActOrder(h, job.Columns) : null;
                    var factor = Gptq.InverseHessianFactor(h, job.Columns, options.Damping, order, out var dead);
                    factors[job.Input] = f = (factor, dead, order);
                }
                var w = job.Buffer.Span.ToArray();
                var rounder = ColumnRounders.For(job.Format, w, job.Rows, job.Columns, job.Importance);
                Gptq.Quantize(w, job.Rows, job.Columns, f.Factor, f.Dead, f.Order, rounder, options, cancellation);
                encoded[job.Name] = rounder.Encode();
                results.Add((job, w));
            }
            foreach (var (job, values) in results) values.AsSpan().CopyTo(job.Buffer.Span);
        }
        return encoded;
    }
}
