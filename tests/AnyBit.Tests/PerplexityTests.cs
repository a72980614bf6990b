using AnyBit.Evaluation;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>Sherlock perplexity of the two trained models, with exactly the training script's windows.</summary>
public class PerplexityTests
{
    private static PerplexityResult Sherlock(string model, int ctx = 512, int maxTokens = 200_000)
    {
        using var m = ModelLoader.Load(Shared.Data("models", model));
        var ids = Perplexity.TokenizeForEvaluation(m.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), maxTokens);
        return Perplexity.Evaluate(m, ids, ctx);
    }

    [SlowFact]
    public void Gutenberg_llama_sherlock_perplexity_is_30_08()
    {
        var r = Sherlock("gutenberg-llama");
        Assert.InRange(r.Perplexity, 30.08 * 0.997, 30.08 * 1.003);
    }

    [SlowFact]
    public void Gutenberg_bitnet_as_trained_sherlock_perplexity_is_36_17()
    {
        var r = Sherlock("gutenberg-bitnet");
        Assert.InRange(r.Perplexity, 36.17 * 0.995, 36.17 * 1.005);
    }

    [Fact]
    public void Windows_are_full_and_non_overlapping()
    {
        // 1000 ids, ctx 128 → windows start at 0, 128, ..., 768 (the one at 896 would need id 1024): 7 windows.
        using var m = ModelLoader.Load(Shared.Data("models", "stories260K", "stories260K.gguf"));
        var ids = Enumerable.Range(0, 1000).Select(i => 1 + i % 300).ToArray();
        var r = Perplexity.Evaluate(m, ids, 128);
        Assert.Equal(7, r.Windows);
        Assert.Equal(7 * 128, r.TokensScored);

        // Independent check of the scoring: the same windows scored one token at a time.
        double nll = 0;
        for (int w = 0; w < 7; w++)
        {
            using var s = m.CreateSession(128);
            for (int t = 0; t < 128; t++)
            {
                var logits = s.Forward(ids.AsSpan(w * 128 + t, 1));
                nll += Perplexity.NegativeLogLikelihood(logits, ids[w * 128 + t + 1]);
            }
        }
        Assert.Equal(nll / (7 * 128), r.MeanNll, 1e-5);
    }

    [Fact]
    public void Text_shorter_than_one_window_is_refused()
    {
        using var m = ModelLoader.Load(Shared.Data("models", "stories260K", "stories260K.gguf"));
        Assert.Throws<AnyBitException>(() => Perplexity.Evaluate(m, [1, 2, 3], 128));
    }
}

/// <summary>llama-perplexity's windows and its KL-divergence statistics.</summary>
public class PerplexityComparisonTests
{
    /// <summary>
    /// llama.cpp's own F32 result on Sherlock with its chunking: 29.3588 over the whole book's 305 chunks
    /// (fixtures/ggml/README.md), 28.7075 over the first 40 and 30.3659 over the first 10 (`llama-perplexity -m
    /// F32.gguf -f sherlock.txt -c 512 --chunks 10`, llama.cpp c392e50). The text is tokenized whole, as
    /// llama-perplexity does, and the first 10 chunks are scored, which keeps the test short.
    /// </summary>
    [Fact]
    public void Llama_cpp_windows_reproduce_llama_perplexity()
    {
        using var m = ModelLoader.Load(Shared.Data("models", "gutenberg-llama"));
        var ids = Perplexity.TokenizeForEvaluation(m.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), null, WindowMethod.LlamaCpp);
        Assert.InRange(ids.Length, 305 * 512, 306 * 512 - 1);
        var r = Perplexity.Evaluate(m, null, ids[..(10 * 512)], 512, WindowMethod.LlamaCpp);
        Assert.Equal(10, r.Windows);
        Assert.Equal(10 * 255, r.TokensScored);
        Assert.InRange(r.Perplexity, 30.3659 * 0.999, 30.3659 * 1.001);
    }

    [Fact]
    public void A_model_against_itself_has_zero_divergence()
    {
        using var m = ModelLoader.Load(Shared.Data("models", "stories260K", "stories260K.gguf"));
        var ids = Enumerable.Range(0, 600).Select(i => 1 + (i * 37) % 500).ToArray();
        var r = Perplexity.Evaluate(m, m, ids, 128, WindowMethod.LlamaCpp);
        Assert.NotNull(r.Kl);
        Assert.InRange(r.Kl!.MeanKl, 0, 1e-9);
        Assert.Equal(100.0, r.Kl.SameTopPercent);
        Assert.Equal(r.Perplexity, r.BasePerplexity!.Value, 1e-9);
        Assert.Equal(4 * 63, r.TokensScored);
    }

    [Fact]
    public void Kl_statistics_match_a_direct_computation()
    {
        var acc = new KlAccumulator();
        float[] p = [0f, 1f, 2f], q = [0.5f, 0.5f, 2f];
        acc.Add(p, q, 2);
        var r = acc.Result();
        double Z(float[] l) => l.Sum(v => Math.Exp(v));
        double expected = 0;
        for (int i = 0; i < 3; i++)
        {
            double pi = Math.Exp(p[i]) / Z(p), qi = Math.Exp(q[i]) / Z(q);
            expected += pi * Math.Log(pi / qi);
        }
        Assert.Equal(expected, r.MeanKl, 1e-12);
        Assert.Equal(100.0, r.SameTopPercent);
        Assert.Equal(Math.Exp(2) / Z(q) - Math.Exp(2) / Z(p), r.MeanDeltaP, 1e-12);
    }

    /// <summary>BitNet's master weights as TQ1_0/TQ2_0 (absmean ternarization, then lossless TQ packing) run as trained.</summary>
    [Theory]
    [InlineData("tq2_0")]
    [InlineData("tq1_0")]
    public void Bitnet_tq_files_keep_the_as_trained_perplexity(string format)
    {
        string output = Path.Combine(Shared.TempDir(), "b.gguf");
        var (plan, input) = AnyBit.Quantization.ModelQuantizer.Plan(Shared.Data("models", "gutenberg-bitnet"), new AnyBit.Quantization.QuantizeOptions { Format = format });
        using (input) AnyBit.Quantization.ModelQuantizer.Write(plan, output);
        using var tq = ModelLoader.Load(output);
        using var trained = ModelLoader.Load(Shared.Data("models", "gutenberg-bitnet"));
        var ids = Perplexity.TokenizeForEvaluation(trained.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 4_096);
        var r = Perplexity.Evaluate(tq, trained, ids, 512, WindowMethod.Full);
        Assert.InRange(r.Perplexity / r.BasePerplexity!.Value, 0.998, 1.002);
    }
}
