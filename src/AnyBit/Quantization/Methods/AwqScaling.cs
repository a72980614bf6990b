using AnyBit.Kernels;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// Activation-aware scaling (AWQ, Lin et al., 2023): input channels that carry large activations are scaled up in
/// the weights and down in the activations, s = mean|x|^α, so their weights are rounded more finely. α is searched
/// per group of linears sharing an input, minimizing the output error on calibration samples after the group's
/// own rounding. Scales are folded into the previous operation so inference does no extra work: the attention and
/// feed-forward RMSNorm weights (for q, k, v and gate, up) and the up projection's rows (for down). attn_output is
/// left alone: with grouped-query attention its input channels are shared across heads and cannot be folded into v.
/// </summary>
public static class AwqScaling
{
    private static readonly float[] Alphas = [0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1f];

    /// <summary>Applies the searched scales to <paramref name="w"/> in place; returns the scale per (layer, input) for the statistics.</summary>
    public static Dictionary<(int, LinearInput), float[]> Apply(ModelConfig c, TransformerWeights w, ActivationStatistics stats,
        Func<string, TensorFormat> formatOf, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellation = default)
    {
        var applied = new Dictionary<(int, LinearInput), float[]>();
        for (int l = 0; l < c.NumLayers; l++)
        {
            cancellation.ThrowIfCancellationRequested();
            var L = w.Layers[l];
            // Each group is the role table's linears of one input; its scale is folded into the operation producing that input.
            var sAttn = SearchAndScale(w, l, LinearInput.Attention, stats, formatOf);
            DivideVector(L.AttnNorm, sAttn);
            applied[(l, LinearInput.Attention)] = sAttn;

            var sFfn = SearchAndScale(w, l, LinearInput.FeedForward, stats, formatOf);
            DivideVector(L.FfnNorm, sFfn);
            applied[(l, LinearInput.FeedForward)] = sFfn;

            var sDown = SearchAndScale(w, l, LinearInput.FeedForwardDown, stats, formatOf);
            DivideRows(L.WUp!.F32, sDown);
            applied[(l, LinearInput.FeedForwardDown)] = sDown;
            progress?.Report((l + 1, c.NumLayers));
        }
        return applied;
    }

    /// <summary>The statistics of an input whose channels were divided by s: H/(s sᵀ), importance/s², samples/s.</summary>
    public static void Rescale(InputStatistics stats, float[] s)
    {
        int n = stats.Width;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) stats.Hessian[(long)i * n + j] /= (double)s[i] * s[j];
            stats.SumSquares[i] /= (double)s[i] * s[i];
            stats.SumAbs[i] /= s[i];
        }
        foreach (var row in stats.Samples)
            for (int i = 0; i < n; i++) row[i] /= s[i];
    }

    /// <summary>Searches the scale of the linears of layer <paramref name="l"/> that read <paramref name="input"/>, and scales their columns.</summary>
    private static float[] SearchAndScale(TransformerWeights w, int l, LinearInput input, ActivationStatistics stats, Func<string, TensorFormat> formatOf)
    {
        var group = TensorRoles.LayerLinears.Where(r => r.Input == input && r.LinearOf!(w, l) is not null).ToArray();
        var s = Search(stats.For(l, input), group.Select(r => (r.LinearOf!(w, l)!.F32, formatOf(r.GgufName(l)))).ToArray());
        ScaleColumns(s, group.Select(r => r.LinearOf!(w, l)!.F32).ToArray());
        return s;
    }

    private static float[] Search(InputStatistics stats, (NativeBuffer W, TensorFormat Format)[] linears)
    {
        int k = stats.Width;
        var meanAbs = stats.MeanAbs();
        int n = stats.Samples.Count;
        var x = new float[(long)n * k];
        for (int t = 0; t < n; t++) stats.Samples[t].CopyTo(x, (long)t * k);
        // Reference outputs X·Wᵀ of the unquantized weights.
        var reference = linears.Select(lin => MatMul(x, n, k, lin.W.Span.ToArray(), (int)(lin.W.Length / k))).ToArray();

        float[]? best = null;
        double bestLoss = double.MaxValue;
        foreach (float alpha in Alphas)
        {
            var s = meanAbs.Select(m => MathF.Pow(MathF.Max(m, 1e-8f), alpha)).ToArray();
            float norm = MathF.Sqrt(s.Max() * s.Min());
            for (int i = 0; i < k; i++) s[i] = MathF.Max(s[i] / norm, 1e-4f);
            var xs = new float[x.Length];
            for (long i = 0; i < x.Length; i++) xs[i] = x[i] / s[i % k];
            double loss = 0;
            for (int j = 0; j < linears.Length; j++)
            {
                var (w, format) = linears[j];
                int rows = (int)(w.Length / k);
                var scaled = w.Span.ToArray();
                for (long i = 0; i < scaled.Length; i++) scaled[i] *= s[i % k];
                var bound = format.Bind(k);
                var bytes = new byte[bound.ByteSize(scaled.Length)];
                bound.Quantize(scaled, k, bytes);
                bound.Dequantize(bytes, scaled);
                var y = MatMul(xs, n, k, scaled, rows);
                for (long i = 0; i < y.Length; i++) { double e = y[i] - reference[j][i]; loss += e * e; }
            }
            if (loss < bestLoss) { bestLoss = loss; best = s; }
        }
        return best!;
    }

    private static unsafe float[] MatMul(float[] x, int tokens, int k, float[] w, int rows)
    {
        var y = new float[(long)tokens * rows];
        fixed (float* px = x, pw = w, py = y) new MatMulF32().Run(WorkerPool.Shared, px, tokens, k, pw, rows, py);
        return y;
    }

    private static void ScaleColumns(float[] s, params NativeBuffer[] matrices)
    {
        int k = s.Length;
        foreach (var m in matrices)
        {
            var span = m.Span;
            for (int i = 0; i < span.Length; i++) span[i] *= s[i % k];
        }
    }

    private static void DivideVector(NativeBuffer v, float[] s)
    {
        var span = v.Span;
        for (int i = 0; i < span.Length; i++) span[i] /= s[i];
    }

    private static void DivideRows(NativeBuffer m, float[] s)
    {
        var span = m.Span;
        int k = span.Length / s.Length;
        for (int r = 0; r < s.Length; r++)
            for (int i = 0; i < k; i++) span[r * k + i] /= s[r];
    }
}
