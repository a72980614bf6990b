using AnyBit.Inference;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// Prompt-lookup speculation: the draft is the continuation of the suffix's latest earlier occurrence, and greedy
/// generation with it gives token for token what plain decoding gives, on a real model and several caches.
/// </summary>
public class SpeculativeTests
{
    [Fact]
    public void Lookup_proposes_what_followed_the_latest_match_of_the_longest_suffix()
    {
        var lookup = new PromptLookup { MaxDraft = 3, MaxNgram = 3 };
        var draft = new int[8];
        // Suffix 2 3 4 occurs at 1 (followed by 9 9 9 9) and later at 6 (followed by 7 8): the latest wins.
        int k = lookup.Propose([1, 2, 3, 4, 9, 9, 2, 3, 4, 7, 8, 5, 2, 3, 4], draft);
        Assert.Equal([7, 8, 5], draft[..k]);
        // No earlier occurrence of any suffix: no draft.
        k = lookup.Propose([6, 1, 7, 1, 7, 2], draft);
        Assert.Equal(0, k);
        k = lookup.Propose([6, 1, 7, 3, 1, 7], draft);
        Assert.Equal([3, 1, 7], draft[..k]); // "1 7" matched at 1, followed by 3 1 7
        Assert.Equal(0, lookup.Propose([5], draft));
        Assert.Throws<AnyBitException>(() => new PromptLookup { MaxDraft = 0 }.Validate());
        Assert.Throws<AnyBitException>(() => new PromptLookup { MinNgram = 3, MaxNgram = 2 }.Validate());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("q8_0")]
    [InlineData("q4_0:rot")]
    public void Greedy_output_is_unchanged_by_speculation(string? cacheType)
    {
        using var model = ModelLoader.Load(Shared.Data("models", "gutenberg-llama"));
        var tokenizer = model.Tokenizer!;
        string passage = File.ReadAllText(Shared.Data("text", "eval", "sherlock.txt"))[2000..3200];
        // The passage, then its start again: a continuation the model partly copies, so drafts are accepted.
        int[] prompt = tokenizer.Encode(passage + "\n\n" + passage[..300]);
        var cache = cacheType is null ? null : new KvCacheOptions { Key = KvCacheType.Parse(cacheType), Value = KvCacheType.Parse(cacheType) };
        var sampler = new Sampler(new SamplingOptions { Temperature = 0 }, model.Config.VocabSize);
        int[] Run(PromptLookup? lookup, out GenerationTimings timings)
        {
            using var session = model.CreateSession(1024, cache: cache);
            GenerationTimings? t = null;
            var ids = Generator.Generate(session, prompt, 120, sampler, stopAtEos: false, onFinished: x => t = x, lookup: lookup).ToArray();
            timings = t!;
            return ids;
        }
        var plain = Run(null, out _);
        var drafted = Run(new PromptLookup(), out var timings);
        Assert.Equal(plain, drafted);
        Assert.True(timings.AcceptedTokens > 10, $"{timings.AcceptedTokens} of {timings.DraftTokens} drafted tokens accepted");
        // A token limit that falls inside an accepted draft still ends exactly there.
        Assert.Equal(plain[..37], RunLimited(37));

        // Sampling with drafts: as many tokens, drafts verified (the distribution itself: SpeculativeSamplingTests).
        var hot = new Sampler(new SamplingOptions { Temperature = 0.7f, TopK = 40, Seed = 3 }, model.Config.VocabSize);
        using (var session = model.CreateSession(1024, cache: cache))
        {
            GenerationTimings? t = null;
            var sampled = Generator.Generate(session, prompt, 80, hot, stopAtEos: false, onFinished: x => t = x, lookup: new PromptLookup()).ToArray();
            Assert.Equal(80, sampled.Length);
            Assert.True(t!.DraftTokens > 0);
            Assert.Equal(prompt.Length + 80 - 1, session.Position); // the last token is sampled, not yet run
        }

        // Leaving the loop at any point (mid-verification included) leaves the cache holding the emitted tokens but
        // the last, so the sequence continues correctly from there.
        var rng = new Random(5);
        for (int trial = 0; trial < 6; trial++)
        {
            int take = rng.Next(1, 100);
            using var session = model.CreateSession(1024, cache: cache);
            var taken = Generator.Generate(session, prompt, 120, sampler, stopAtEos: false, lookup: new PromptLookup()).Take(take).ToArray();
            Assert.Equal(plain[..take], taken);
            Assert.Equal(prompt.Length + take - 1, session.Position);
            session.Forward([taken[^1]]);
            Assert.Equal(plain[take], Sampler.ArgMax(session.LastLogits));
        }

        int[] RunLimited(int n)
        {
            using var session = model.CreateSession(1024, cache: cache);
            return Generator.Generate(session, prompt, n, sampler, stopAtEos: false, lookup: new PromptLookup()).ToArray();
        }
    }
}

/// <summary>Speculative sampling keeps the sampler's distribution: verified tokens are drawn as often as plain samples.</summary>
public class SpeculativeSamplingTests
{
    [Theory]
    [InlineData(2)] // a likely token
    [InlineData(0)] // an unlikely one, still kept by the filters
    [InlineData(5)] // one the filters remove
    public void Verify_draws_from_the_same_distribution_as_Sample(int draft)
    {
        float[] logits = [0.3f, 1.5f, 2.0f, 1.1f, 0.9f, -3f];
        var options = new SamplingOptions { Temperature = 0.9f, TopK = 5, TopP = 0.97f, MinP = 0.03f, Seed = 11 };
        var plain = new Sampler(options, logits.Length);
        var verify = new Sampler(options with { Seed = 12 }, logits.Length);
        int n = 200_000;
        var a = new int[logits.Length];
        var b = new int[logits.Length];
        int kept = 0;
        for (int i = 0; i < n; i++)
        {
            a[plain.Sample(logits, [])]++;
            b[verify.Verify(logits, [], draft, out bool accepted)]++;
            if (accepted) kept++;
        }
        for (int t = 0; t < logits.Length; t++)
        {
            // Two independent binomial counts: their difference has σ = √(2·n·p(1 − p)).
            double p = (a[t] + b[t]) / (2.0 * n);
            double sigma = Math.Sqrt(2 * n * p * (1 - p)) + 1;
            Assert.True(Math.Abs(a[t] - b[t]) < 5 * sigma, $"token {t}: plain {a[t]}, verified {b[t]}");
        }
        // The draft is kept about as often as it would be sampled (never, where the filters remove it).
        Assert.True(Math.Abs(kept - a[draft]) < 5 * Math.Sqrt(2.0 * n * 0.25) + 1, $"kept {kept}, sampled {a[draft]}");
        Assert.Equal(draft == 5 ? 0 : b[draft], draft == 5 ? b[5] : kept);
    }
}
