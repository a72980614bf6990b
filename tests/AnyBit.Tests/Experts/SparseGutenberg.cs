using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Tests.Experts;

/// <summary>
/// A real sparse Mixture-of-Experts model to quantize and measure: gutenberg-llama with each feed-forward block cut
/// into 4 experts of 384 neurons, 2 routed per token (Mixtral's top-2 of softmax, renormalized).
/// <list type="bullet">
/// <item>Neurons are grouped by co-activation: balanced k-means (4 groups of equal size) of each neuron's |activation|
/// profile over calibration tokens, so that neurons which fire on the same tokens share an expert.</item>
/// <item>The router predicts each group's contribution: least squares (ridge) from the block's normed input to the
/// norm of the group's output ‖down_g · h_g‖ on the calibration tokens; the top 2 predicted groups run.</item>
/// <item>The router's logits are scaled by <see cref="Temperature"/> so that the two renormalized weights stay near ½
/// each, and down by 2α, α the least-squares scale of the two chosen groups' dense contribution to the whole block's
/// output on the calibration tokens.</item>
/// </list>
/// Calibrated on Moby Dick (the sensitivity text of the accuracy tests is different windows of it, the evaluation text is
/// Sherlock Holmes).
/// </summary>
internal static class SparseGutenberg
{
    public const int Experts = 4, Used = 2;
    private const float Temperature = 0.25f;
    private static readonly string Dense = Shared.Data("models", "gutenberg-llama");
    public static readonly string Calibration = Shared.Data("text", "gutenberg", "pg2701_moby_dick_or_the_whale.txt");

    private static readonly Lazy<string> Built = new(() =>
    {
        string path = Path.Combine(Shared.TempDir(), "gutenberg-llama-4x-top2.gguf");
        Write(path);
        return path;
    });

    /// <summary>The model's file (built once per test run).</summary>
    public static string Path_ => Built.Value;

    /// <summary>Keeps each layer's FFN input rows and gated activations.</summary>
    private sealed class Recorder(int layers) : IActivationObserver
    {
        public readonly List<float[]>[] Inputs = Enumerable.Range(0, layers).Select(_ => new List<float[]>()).ToArray();
        public readonly List<float[]>[] Hidden = Enumerable.Range(0, layers).Select(_ => new List<float[]>()).ToArray();
        public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width)
        {
            var target = input == LinearInput.FeedForward ? Inputs : input == LinearInput.FeedForwardDown ? Hidden : null;
            if (target is null || layer < 0) return;
            for (int t = 0; t < tokens; t++) target[layer].Add(rows.Slice(t * width, width).ToArray());
        }
    }

    public static void Write(string output)
    {
        using var dense = ModelLoader.Load(Dense, new LoadOptions { Kernels = AnyBit.Kernels.Quantized.KernelMode.Float32 });
        var c = dense.Config;
        int f = c.IntermediateSize, part = f / Experts, d = c.HiddenSize;
        var windows = CalibrationText.Sample(dense.Tokenizer!, Calibration, 8, 128, seed: 7);
        var recorder = new Recorder(c.NumLayers);
        using (var s = dense.CreateSession(128))
        {
            s.Observer = recorder;
            var logits = new float[128 * c.VocabSize];
            foreach (var w in windows) { s.Reset(); s.Forward(w, logits); }
        }

        using var files = ModelLoader.Open(Dense);
        var source = files.Weights;
        var sparse = c with { Experts = new ExpertConfig { Count = Experts, Used = Used, FfnSize = part, NormalizeWeights = true } };
        var writer = new GgufWriter();
        GgufModelMetadata.WriteHyperparameters(writer, sparse, "gutenberg-llama-4x-top2", "llama");
        GgufModelMetadata.WriteTokenizer(writer, files.Tokenizer!, sparse);
        void Tensor(string name, long[] shape, float[] values) =>
            writer.AddTensor(name, shape, (uint)TensorType.F32, TensorTypes.ElementCount(shape) * 4, dst => MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(dst));
        var groups = new int[c.NumLayers][];
        var routers = new float[c.NumLayers][];
        var scales = new double[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var h = recorder.Hidden[l];
            groups[l] = Cluster(h, f);
            var down = source.ReadFloat32(TensorRoles.FfnDown.GgufName(l)); // [d, f]
            (routers[l], scales[l]) = Router(recorder.Inputs[l], h, down, groups[l], d, f);
        }
        foreach (var (role, layer, name) in TensorRoles.InFileOrder(c.Architecture.Roles, c.NumLayers))
        {
            if (!source.Contains(name)) continue;
            if (role == TensorRoles.FfnGate || role == TensorRoles.FfnUp)
            {
                var w = source.ReadFloat32(name); // [f, d]: expert e's rows are its group's neurons
                var result = new float[w.Length];
                for (int e = 0; e < Experts; e++)
                    for (int j = 0; j < part; j++)
                        w.AsSpan(groups[layer][e * part + j] * d, d).CopyTo(result.AsSpan((e * part + j) * d, d));
                Tensor((role == TensorRoles.FfnGate ? TensorRoles.FfnGateExps : TensorRoles.FfnUpExps).GgufName(layer), [Experts, part, d], result);
            }
            else if (role == TensorRoles.FfnDown)
            {
                Tensor(TensorRoles.FfnGateInp.GgufName(layer), [Experts, d], routers[layer]);
                var down = source.ReadFloat32(name); // [d, f]
                var result = new float[down.Length];
                for (int e = 0; e < Experts; e++)
                    for (int r = 0; r < d; r++)
                        for (int j = 0; j < part; j++)
                            result[((long)e * d + r) * part + j] = (float)(Used * scales[layer]) * down[(long)r * f + groups[layer][e * part + j]];
                Tensor(TensorRoles.FfnDownExps.GgufName(layer), [Experts, d, part], result);
            }
            else Tensor(name, source.Shape(name), source.ReadFloat32(name));
        }
        writer.Write(output);
    }

    /// <summary>Balanced k-means of the neurons' normalized |activation| profiles: the neurons of group e, in order.</summary>
    private static int[] Cluster(List<float[]> hidden, int f)
    {
        int tokens = hidden.Count, part = f / Experts;
        var profile = new float[f][];
        for (int j = 0; j < f; j++)
        {
            var p = new float[tokens];
            for (int t = 0; t < tokens; t++) p[t] = MathF.Abs(hidden[t][j]);
            float norm = MathF.Sqrt(p.Sum(v => v * v)) + 1e-12f;
            for (int t = 0; t < tokens; t++) p[t] /= norm;
            profile[j] = p;
        }
        var assign = Enumerable.Range(0, f).Select(j => j % Experts).ToArray();
        var rng = new Random(1);
        var centroids = Enumerable.Range(0, Experts).Select(_ => profile[rng.Next(f)].ToArray()).ToArray();
        for (int it = 0; it < 12; it++)
        {
            // Balanced assignment: (neuron, group) pairs by similarity, best first, each group filled to a quarter.
            var pairs = new List<(float Sim, int Neuron, int Group)>(f * Experts);
            for (int j = 0; j < f; j++)
                for (int e = 0; e < Experts; e++)
                    pairs.Add((System.Numerics.Tensors.TensorPrimitives.Dot(profile[j], centroids[e]), j, e));
            pairs.Sort((a, b) => b.Sim.CompareTo(a.Sim));
            var taken = new bool[f];
            var size = new int[Experts];
            foreach (var (_, j, e) in pairs)
            {
                if (taken[j] || size[e] == part) continue;
                taken[j] = true;
                size[e]++;
                assign[j] = e;
            }
            for (int e = 0; e < Experts; e++)
            {
                var sum = new float[tokens];
                for (int j = 0; j < f; j++)
                    if (assign[j] == e) System.Numerics.Tensors.TensorPrimitives.Add(sum, profile[j], sum);
                float norm = MathF.Sqrt(sum.Sum(v => v * v)) + 1e-12f;
                for (int t = 0; t < tokens; t++) sum[t] /= norm;
                centroids[e] = sum;
            }
        }
        return Enumerable.Range(0, Experts).SelectMany(e => Enumerable.Range(0, f).Where(j => assign[j] == e)).ToArray();
    }

    /// <summary>Ridge regression from the normed input to each group's output norm; rows [expert, d], times the temperature.</summary>
    private static (float[] Router, double Scale) Router(List<float[]> inputs, List<float[]> hidden, float[] down, int[] order, int d, int f)
    {
        int tokens = inputs.Count, part = f / Experts;
        // Targets: ‖down_g h_g‖ per token and group.
        var y = new double[tokens, Experts];
        var o = new double[d];
        for (int t = 0; t < tokens; t++)
            for (int e = 0; e < Experts; e++)
            {
                Array.Clear(o);
                for (int j = 0; j < part; j++)
                {
                    int n = order[e * part + j];
                    float hv = hidden[t][n];
                    if (hv == 0) continue;
                    for (int r = 0; r < d; r++) o[r] += down[(long)r * f + n] * hv;
                }
                y[t, e] = Math.Sqrt(o.Sum(v => v * v));
            }
        // Normal equations with a bias column folded in by centering; (XᵀX + λI) w = Xᵀy.
        int n1 = d;
        var xtx = new double[n1, n1];
        var xty = new double[n1, Experts];
        // Uncentered: the router has no bias, so the fit must rank the groups without one.
        var mean = new double[d];
        var ymean = new double[Experts];
        for (int t = 0; t < tokens; t++)
        {
            var x = inputs[t];
            for (int i = 0; i < d; i++)
            {
                double xi = x[i] - mean[i];
                for (int k = 0; k < d; k++) xtx[i, k] += xi * (x[k] - mean[k]);
                for (int e = 0; e < Experts; e++) xty[i, e] += xi * (y[t, e] - ymean[e]);
            }
        }
        double trace = 0;
        for (int i = 0; i < d; i++) trace += xtx[i, i];
        for (int i = 0; i < d; i++) xtx[i, i] += 1e-3 * trace / d;
        var wts = Solve(xtx, xty, d);
        var router = new float[Experts * d];
        for (int e = 0; e < Experts; e++)
            for (int i = 0; i < d; i++) router[e * d + i] = (float)(Temperature * wts[i, e]);
        // The scale of the two chosen groups' sum that best matches the dense output (least squares over the tokens):
        // the dropped groups' share is not zero, and the chosen ones carry more than half.
        double num = 0, den = 0;
        for (int t = 0; t < tokens; t += 8) // every 8th token: the scale is one number
        {
            var score = new double[Experts];
            for (int e = 0; e < Experts; e++)
                for (int i = 0; i < d; i++) score[e] += wts[i, e] * inputs[t][i];
            var top = Enumerable.Range(0, Experts).OrderByDescending(e => score[e]).Take(Used).ToHashSet();
            for (int r = 0; r < d; r++)
            {
                double chosen = 0, all = 0;
                for (int e = 0; e < Experts; e++)
                    for (int j = 0; j < part; j++)
                    {
                        int n = order[e * part + j];
                        double v = down[(long)r * f + n] * hidden[t][n];
                        all += v;
                        if (top.Contains(e)) chosen += v;
                    }
                num += chosen * all;
                den += chosen * chosen;
            }
        }
        return (router, den > 0 ? num / den : 1);
    }

    /// <summary>Cholesky solve of a symmetric positive definite system with several right-hand sides.</summary>
    private static double[,] Solve(double[,] a, double[,] b, int n)
    {
        int m = b.GetLength(1);
        var l = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double sum = a[i, j];
                for (int k = 0; k < j; k++) sum -= l[i, k] * l[j, k];
                l[i, j] = i == j ? Math.Sqrt(sum) : sum / l[j, j];
            }
        var x = new double[n, m];
        for (int c = 0; c < m; c++)
        {
            var z = new double[n];
            for (int i = 0; i < n; i++)
            {
                double sum = b[i, c];
                for (int k = 0; k < i; k++) sum -= l[i, k] * z[k];
                z[i] = sum / l[i, i];
            }
            for (int i = n - 1; i >= 0; i--)
            {
                double sum = z[i];
                for (int k = i + 1; k < n; k++) sum -= l[k, i] * x[k, c];
                x[i, c] = sum / l[i, i];
            }
        }
        return x;
    }
}
