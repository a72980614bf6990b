using AnyBit.Evaluation;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The integer kernels inside a whole model: gutenberg-llama quantized to each ggml mix gives the same perplexity,
/// to the last bit, with the fast kernels as with the scalar reference kernels, and stays within a fraction of a
/// percent of the float path (the int8 activations are the only difference).
/// </summary>
public class FastKernelModelTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");

    [Theory]
    [InlineData("q8_0", 0.01)]
    [InlineData("q4_0", 0.01)]
    [InlineData("q4_1", 0.01)]
    [InlineData("q5_1", 0.01)]
    [InlineData("q4_k_m", 0.01)]
    [InlineData("q5_k_m", 0.01)]
    [InlineData("q3_k_m", 0.01)]
    [InlineData("q2_k_mix", 0.01)]
    [InlineData("int3:g64", 0.01)]
    [InlineData("mxfp4", 0.01)]
    [InlineData("nf4", 0.01)]
    [InlineData("mxfp6_e3m2", 0.01)]
    // A float model forced to ternary is near-random (perplexity in the thousands), where int8 rounding moves
    // more: only the identity with the reference is the point here.
    [InlineData("tq1_0", 0.05)]
    public void Fast_and_reference_kernels_give_identical_perplexity(string format, double maxRelativeToFloat)
    {
        string dir = Shared.TempDir();
        try
        {
            string file = Path.Combine(dir, "q.gguf");
            var (plan, input) = ModelQuantizer.Plan(ModelPath, new QuantizeOptions { Format = format });
            using (input) ModelQuantizer.Write(plan, file);
            using var fast = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Fast });
            using var reference = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Reference });
            using var float32 = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Float32 });
            Assert.Contains(fast.Weights.Layers[0].Wq.Packed!.KernelPath, KernelReport.Describe(fast).Values);
            Assert.Null(float32.Weights.Layers[0].Wq.Packed);
            var ids = Perplexity.TokenizeForEvaluation(fast.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 257);
            double a = Perplexity.Evaluate(fast, ids, 128).Perplexity;
            double b = Perplexity.Evaluate(reference, ids, 128).Perplexity;
            double f = Perplexity.Evaluate(float32, ids, 128).Perplexity;
            Assert.Equal(b, a);
            Assert.True(Math.Abs(a / f - 1) < maxRelativeToFloat, $"{format}: int8 kernels {a} vs float {f}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
