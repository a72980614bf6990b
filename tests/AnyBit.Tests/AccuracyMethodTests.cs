using AnyBit.Kernels;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Quantization.Calibration;
using AnyBit.Quantization.Methods;

namespace AnyBit.Tests;

/// <summary>Rotation, AWQ folding, weighted rounding, the mixed-precision solver and the importance matrix, each against a small independent reference.</summary>
public class AccuracyMethodTests
{
    /// <summary>Weights the methods edit in place must be float32 copies (the fast path may hold them in 16 bits).</summary>
    private static readonly LoadOptions FloatWeights = new() { Kernels = AnyBit.Kernels.Quantized.KernelMode.Float32 };

    [Fact]
    public void Fast_Walsh_Hadamard_equals_the_Sylvester_matrix_product_and_is_orthogonal_when_scaled()
    {
        int n = 16;
        var h = new int[n, n];
        h[0, 0] = 1;
        for (int size = 1; size < n; size *= 2)
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                {
                    h[i, j + size] = h[i, j];
                    h[i + size, j] = h[i, j];
                    h[i + size, j + size] = -h[i, j];
                }
        var rng = new Random(2);
        var x = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray();
        var expected = Enumerable.Range(0, n).Select(i => Enumerable.Range(0, n).Sum(j => h[i, j] * x[j])).ToArray();
        var y = (float[])x.Clone();
        Hadamard.Transform(y);
        for (int i = 0; i < n; i++) Assert.True(MathF.Abs(expected[i] - y[i]) < 1e-4f, $"{i}: {y[i]} vs {expected[i]}");
        Hadamard.Transform(y); // H·H = n·I
        for (int i = 0; i < n; i++) Assert.True(MathF.Abs(n * x[i] - y[i]) < 1e-4f);
        Assert.Throws<ArgumentException>(() => Hadamard.Transform(new float[12]));
    }

    private static float[] Logits(Transformer model, int[] ids)
    {
        using var s = model.CreateSession(ids.Length);
        var all = new float[ids.Length * model.Config.VocabSize];
        s.Forward(ids, all);
        return all;
    }

    [Theory]
    [InlineData("llama3-bpe")]
    [InlineData("qwen2-bpe")]
    [InlineData("mistral-sp")]
    [InlineData("qwen3-bpe")]
    public void Rotation_folded_into_the_weights_leaves_the_model_function_unchanged(string fixture)
    {
        int[] ids = [1, 17, 33, 5, 99, 2, 64, 8];
        using var original = ModelLoader.Load(Shared.Fixture("models", fixture), FloatWeights); // its weights are compared below
        var expected = Logits(original, ids);
        using var copy = ModelLoader.Load(Shared.Fixture("models", fixture), FloatWeights); // edited below
        var rotated = Rotation.Apply(copy.Config, copy.Weights, seed: 9);
        var model = new Transformer(copy.Config, rotated, copy.Tokenizer, copy.Activations, copy.Source);
        var actual = Logits(model, ids);
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(MathF.Abs(expected[i] - actual[i]) < 2e-4f * scale, $"{fixture} logit {i}: {actual[i]} vs {expected[i]}");
        // The weights did change (the rotation is not the identity).
        Assert.NotEqual(original.Weights.Layers[0].Wq.F32.Span.ToArray(), model.Weights.Layers[0].Wq.F32.Span.ToArray());
        if (!rotated.OutputIsEmbedding) rotated.Output.Dispose();
    }

    [Fact]
    public void Rotation_refuses_BitNet_and_non_power_of_two_widths()
    {
        using var bitnet = ModelLoader.Load(Shared.Fixture("models", "bitnet-bpe"));
        Assert.Contains("BitNet", Rotation.WhyNot(bitnet.Config));
        Assert.Contains("power-of-two", Rotation.WhyNot(bitnet.Config with { Architecture = Architecture.Llama, HiddenSize = 384 }));
    }

    [Fact]
    public void AWQ_scales_fold_exactly_and_do_not_increase_the_calibration_error()
    {
        int[] ids = [1, 17, 33, 5, 99, 2, 64, 8, 12, 40, 41, 42];
        using var model = ModelLoader.Load(Shared.Fixture("models", "llama3-bpe"), FloatWeights); // edited below
        var expected = Logits(model, ids);
        var windows = new[] { ids, ids.Reverse().ToArray() };
        var stats = ActivationStatistics.Collect(model, windows);
        var format = FormatRegistry.Parse("int3:g64");
        var before = model.Weights.Layers[0].WGate!.F32.Span.ToArray();
        AwqScaling.Apply(model.Config, model.Weights, stats, _ => format);
        var actual = Logits(model, ids);
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(MathF.Abs(expected[i] - actual[i]) < 2e-4f * scale, $"logit {i}: {actual[i]} vs {expected[i]}");
        Assert.NotEqual(before, model.Weights.Layers[0].WGate!.F32.Span.ToArray());
    }

    [Fact]
    public void Weighted_clip_search_never_loses_to_round_to_nearest_on_the_weighted_error()
    {
        var rng = new Random(4);
        int rows = 16, cols = 128;
        var w = Enumerable.Range(0, rows * cols).Select(i => (float)((rng.NextDouble() - 0.5) * (i % 37 == 0 ? 8 : 1))).ToArray();
        var importance = Enumerable.Range(0, cols).Select(i => (float)(0.1 + rng.NextDouble() * (i % 5 == 0 ? 10 : 1))).ToArray();
        var format = new IntFormat(3, 64, symmetric: false);
        var clipped = new float[w.Length];
        format.Dequantize(WeightedRounding.Quantize(format, w, rows, cols, importance), clipped);
        var rtnBytes = new byte[format.ByteSize(w.Length)];
        format.Quantize(w, cols, rtnBytes);
        var rtn = new float[w.Length];
        format.Dequantize(rtnBytes, rtn);
        double Err(float[] q) => Enumerable.Range(0, w.Length).Sum(i => importance[i % cols] * (double)(w[i] - q[i]) * (w[i] - q[i]));
        Assert.True(Err(clipped) <= Err(rtn));
        Assert.True(Err(clipped) < 0.95 * Err(rtn)); // the outliers make clipping worth it here
    }

    [Fact]
    public void Mixed_precision_solver_fits_the_budget_and_is_near_the_exhaustive_optimum()
    {
        var rng = new Random(8);
        long[] bytes = [2, 3, 4, 6];
        var choices = new Dictionary<string, List<MixedPrecisionPlanner.Choice>>();
        for (int t = 0; t < 6; t++)
        {
            double sensitivity = 0.2 + rng.NextDouble() * 3;
            long size = 100 + rng.Next(400);
            choices[$"t{t}"] = bytes.Select((b, i) => new MixedPrecisionPlanner.Choice($"t{t}", FormatRegistry.Parse("q8_0"), sensitivity * Math.Pow(0.3, i), b * size)).ToList();
        }
        long budget = (long)(choices.Values.Sum(l => l[1].Bytes) * 1.15);
        var plan = MixedPrecisionPlanner.Solve(choices, budget);
        Assert.True(plan.Sum(c => c.Bytes) <= budget);
        double best = double.MaxValue;
        var names = choices.Keys.ToArray();
        void Search(int i, long used, double loss)
        {
            if (used > budget) return;
            if (i == names.Length) { best = Math.Min(best, loss); return; }
            foreach (var c in choices[names[i]]) Search(i + 1, used + c.Bytes, loss + c.Loss);
        }
        Search(0, 0, 0);
        double planLoss = plan.Sum(c => c.Loss);
        Assert.True(planLoss <= best * 1.10, $"plan {planLoss} vs optimum {best}");
        // And it beats the best uniform choice that fits.
        double uniform = Enumerable.Range(0, bytes.Length).Where(i => choices.Values.Sum(l => l[i].Bytes) <= budget).Min(i => choices.Values.Sum(l => l[i].Loss));
        Assert.True(planLoss <= uniform);
        Assert.Throws<AnyBitException>(() => MixedPrecisionPlanner.Solve(choices, 10));
    }

    [Fact]
    public void Importance_matrix_round_trips_through_its_GGUF_file()
    {
        using var model = ModelLoader.Load(Shared.Fixture("models", "llama3-bpe"));
        var stats = ActivationStatistics.Collect(model, [[1, 2, 3, 4, 5, 6, 7, 8]]);
        string dir = Shared.TempDir();
        try
        {
            string path = Path.Combine(dir, "imatrix.gguf");
            ImportanceMatrix.Write(stats, model.Config, path, "test");
            var read = ImportanceMatrix.Read(path);
            Assert.Equal(model.Config.NumLayers * 7, read.Count);
            var expected = stats.For(1, LinearInput.FeedForwardDown).Importance();
            Assert.Equal(expected, read["blk.1.ffn_down.weight"]);
            // Mean of x² over the 8 tokens, checked against the statistics' own sums.
            Assert.Equal(8, stats.For(0, LinearInput.Attention).Tokens);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Hessian_statistics_equal_a_direct_sum_of_outer_products()
    {
        var stats = new ActivationStatistics(WorkerPool.Shared, sampleRows: 4);
        var rng = new Random(1);
        int width = 24, tokens = 10;
        var rows = Enumerable.Range(0, tokens * width).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        stats.Observe(0, LinearInput.Attention, rows, tokens, width);
        var s = stats.For(0, LinearInput.Attention);
        for (int i = 0; i < width; i++)
            for (int j = 0; j < width; j++)
            {
                double expected = Enumerable.Range(0, tokens).Sum(t => (double)rows[t * width + i] * rows[t * width + j]);
                Assert.Equal(expected, s.Hessian[i * width + j], 4);
            }
    }
}
