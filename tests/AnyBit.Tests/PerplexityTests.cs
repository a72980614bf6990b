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

    [Fact]
    public void Gutenberg_llama_sherlock_perplexity_is_30_08()
    {
        var r = Sherlock("gutenberg-llama");
        Assert.InRange(r.Perplexity, 30.08 * 0.997, 30.08 * 1.003);
    }

    [Fact]
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
