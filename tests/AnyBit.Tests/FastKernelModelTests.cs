using AnyBit.IO;
using AnyBit.Evaluation;
using AnyBit.Kernels;
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
    [InlineData("int2:g64", 0.05)] // the bit-serial lookup-table kernel on AVX-512 CPUs without AVX-VNNI (tq1_0: on AMD ones with it too)
    [InlineData("int1:g64", 0.5)]  // the bit-serial kernel on every AVX-512 CPU; near-random, so only the identity counts
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
            // One window of 128 scored tokens: the reference kernels are scalar, and the identity is per token anyway.
            var ids = Perplexity.TokenizeForEvaluation(fast.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 129);
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

    /// <summary>
    /// The integer kernels' sessions keep a quantized embedding as stored and decode a row per token: each row equals
    /// that row of the whole tensor decoded, and the table holds the stored bytes, not floats. The float path keeps floats.
    /// </summary>
    [Theory]
    [InlineData("q8_0", "Q8_0")]
    [InlineData("q4_k_m", "Q6_K")] // llama.cpp's mix gives the tied embedding/head Q6_K
    public void A_quantized_embedding_stays_as_stored_and_decodes_row_by_row(string format, string storedType)
    {
        string dir = Shared.TempDir();
        try
        {
            string file = Path.Combine(dir, "e.gguf");
            var (plan, input) = ModelQuantizer.Plan(ModelPath, new QuantizeOptions { Format = format });
            using (input) ModelQuantizer.Write(plan, file);
            using var fast = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Fast });
            using var float32 = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Float32 });
            using var gguf = GgufFile.Open(file);
            var stored = gguf.Find("token_embd.weight")!;
            var all = stored.ToFloat32();
            var table = fast.Weights.TokenEmbedding;
            Assert.Equal(storedType, table.StoredType);
            Assert.Null(table.Float);
            Assert.Equal(stored.ByteLength, table.Bytes);
            Assert.NotNull(float32.Weights.TokenEmbedding.Float);
            int d = fast.Config.HiddenSize, v = fast.Config.VocabSize;
            var row = new float[d];
            foreach (int token in new[] { 0, 1, 2, 777, v / 2, v - 1 })
            {
                table.CopyRow(token, row);
                Assert.Equal(all.AsSpan(token * d, d).ToArray(), row);
                float32.Weights.TokenEmbedding.CopyRow(token, row);
                Assert.Equal(all.AsSpan(token * d, d).ToArray(), row);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// Float formats the integer kernels do not run are held narrow on the fast path and give the float path's
    /// perplexity to the last bit: F16 and BF16 in 16 bits, MXFP8 blocks as stored (8.25 bits).
    /// </summary>
    [Theory]
    [InlineData("f16", NarrowKind.F16)]
    [InlineData("bf16", NarrowKind.BF16)]
    [InlineData("mxfp8_e4m3", NarrowKind.MxE4M3)]
    [InlineData("mxfp8_e5m2", NarrowKind.MxE5M2)]
    public void Narrow_float_weights_give_the_float_paths_perplexity(string format, NarrowKind kind)
    {
        string dir = Shared.TempDir();
        try
        {
            string file = Path.Combine(dir, "h.gguf");
            var (plan, input) = ModelQuantizer.Plan(ModelPath, new QuantizeOptions { Format = format });
            using (input) ModelQuantizer.Write(plan, file);
            using var fast = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Fast });
            using var float32 = ModelLoader.Load(file, new LoadOptions { Kernels = KernelMode.Float32 });
            var narrow = fast.Weights.Layers[0].Wq.Narrow;
            Assert.NotNull(narrow);
            Assert.Equal(kind, narrow!.Kind);
            Assert.Null(float32.Weights.Layers[0].Wq.Narrow);
            long floatBytes = float32.Weights.Layers[0].Wq.ByteLength;
            Assert.Equal(kind is NarrowKind.F16 or NarrowKind.BF16 ? floatBytes / 2 : floatBytes / 128 * 33, fast.Weights.Layers[0].Wq.ByteLength);
            Assert.Contains("widened", KernelReport.Describe(fast)[fast.Weights.Layers[0].Wq.StoredType]);
            // One window of 128 scored tokens: the identity holds token by token.
            var ids = Perplexity.TokenizeForEvaluation(fast.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 129);
            Assert.Equal(Perplexity.Evaluate(float32, ids, 128).Perplexity, Perplexity.Evaluate(fast, ids, 128).Perplexity);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// BitNet b1.58 as trained (ternary weights, int8 activations per token) runs on the ternary integer kernel: the
    /// same perplexity, to the last bit, as its scalar reference, and within 0.2 % of the float path. The float path
    /// sums the same products in float32, in another order; a last-ulp difference in a layer's output moves the next
    /// layer's int8 rounding where it sits on a tie (bf16 models hit exact halves), so the two drift apart by more
    /// than accumulation order alone would; 0.2 % leaves room over the drift these 256 tokens show for the TQ1_0
    /// file (see docs/performance.md#int8-activations). The HF folder's bf16 master weights and a TQ1_0 file of them
    /// both become packed ternary codes with the tensor's scale applied to the product.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("tq1_0")]
    public void Bitnet_runs_on_the_ternary_kernel_with_the_reference_perplexity(string? format)
    {
        string dir = Shared.TempDir();
        try
        {
            string path = Shared.Data("models", "gutenberg-bitnet");
            if (format is not null)
            {
                string file = Path.Combine(dir, "b.gguf");
                var (plan, input) = ModelQuantizer.Plan(path, new QuantizeOptions { Format = format });
                using (input) ModelQuantizer.Write(plan, file);
                path = file;
            }
            using var fast = ModelLoader.Load(path, new LoadOptions { Kernels = KernelMode.Fast });
            using var reference = ModelLoader.Load(path, new LoadOptions { Kernels = KernelMode.Reference });
            using var float32 = ModelLoader.Load(path, new LoadOptions { Kernels = KernelMode.Float32 });
            var wq = fast.Weights.Layers[0].Wq;
            Assert.Equal(TensorType.TQ2_0, wq.Packed!.Type);
            Assert.NotEqual(1f, wq.OutputScale);
            Assert.Null(fast.Weights.Output.Packed); // BitNet's head is not a ternary layer
            Assert.Null(float32.Weights.Layers[0].Wq.Packed);
            // One window of 128 scored tokens: the reference kernels are scalar, and the identity is per token anyway.
            var ids = Perplexity.TokenizeForEvaluation(fast.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 129);
            double a = Perplexity.Evaluate(fast, ids, 128).Perplexity;
            double b = Perplexity.Evaluate(reference, ids, 128).Perplexity;
            double f = Perplexity.Evaluate(float32, ids, 128).Perplexity;
            Assert.Equal(b, a);
            Assert.True(Math.Abs(a / f - 1) < 2e-3, $"ternary kernel {a} vs float {f}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Ternary_packing_takes_only_whole_blocks_of_one_magnitude()
    {
        var w = new float[4 * 256];
        for (int i = 0; i < w.Length; i++) w[i] = (i % 3 - 1) * 0.0371f;
        using (var m = Ternary.Pack(w, 4, 256, keepSource: false, out float s))
        {
            Assert.NotNull(m);
            Assert.Equal(0.0371f, s);
        }
        Assert.Null(Ternary.Pack(w, 8, 128, keepSource: false, out _)); // rows of 128: not whole 256-value blocks
        w[5] = 0.5f;
        Assert.Null(Ternary.Pack(w, 4, 256, keepSource: false, out _)); // two magnitudes: not ternary
    }
}
