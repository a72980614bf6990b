using AnyBit.Models;

namespace AnyBit.Tests;

public class SamplerTests
{
    private static readonly float[] Logits = [1f, 3f, 2f, 0f, 2.9f];

    private static int[] Histogram(SamplingOptions o, int draws = 4000, int[]? history = null)
    {
        var s = new Sampler(o with { Seed = 99 }, Logits.Length);
        var counts = new int[Logits.Length];
        for (int i = 0; i < draws; i++) counts[s.Sample(Logits, history ?? [])]++;
        return counts;
    }

    [Fact]
    public void Temperature_zero_is_argmax() => Assert.Equal(1, new Sampler(new SamplingOptions(), 5).Sample(Logits, []));

    [Fact]
    public void Top_k_keeps_only_the_k_best()
    {
        var h = Histogram(new SamplingOptions { Temperature = 1, TopK = 2 });
        Assert.True(h[1] > 0 && h[4] > 0);
        Assert.Equal(0, h[0] + h[2] + h[3]);
    }

    [Fact]
    public void Top_p_keeps_the_smallest_nucleus()
    {
        // softmax(1,3,2,0,2.9): p ≈ .05,.39,.14,.02,.35 → the two best reach 0.74; top-p 0.7 keeps exactly them.
        var h = Histogram(new SamplingOptions { Temperature = 1, TopP = 0.7f });
        Assert.Equal(0, h[0] + h[2] + h[3]);
        var wider = Histogram(new SamplingOptions { Temperature = 1, TopP = 0.8f });
        Assert.True(wider[2] > 0);
    }

    [Fact]
    public void Min_p_drops_unlikely_tokens()
    {
        // Relative to the best (p≈.39): token 2 has ≈.37 of it, token 0 ≈.14, token 3 ≈.05.
        var h = Histogram(new SamplingOptions { Temperature = 1, MinP = 0.2f });
        Assert.True(h[2] > 0);
        Assert.Equal(0, h[0] + h[3]);
    }

    [Fact]
    public void Sampling_follows_the_softmax_distribution()
    {
        var h = Histogram(new SamplingOptions { Temperature = 1 }, draws: 20000);
        double z = Logits.Sum(l => Math.Exp(l));
        for (int i = 0; i < Logits.Length; i++)
            Assert.InRange(h[i] / 20000.0, Math.Exp(Logits[i]) / z - 0.02, Math.Exp(Logits[i]) / z + 0.02);
    }

    [Fact]
    public void Repetition_penalty_demotes_seen_tokens()
    {
        var s = new Sampler(new SamplingOptions { RepetitionPenalty = 2f }, 5);
        Assert.Equal(4, s.Sample(Logits, [1, 1, 1])); // 3/2 = 1.5 < 2.9
    }

    [Fact]
    public void Same_seed_same_choices()
    {
        var a = Histogram(new SamplingOptions { Temperature = 1.3f });
        var b = Histogram(new SamplingOptions { Temperature = 1.3f });
        Assert.Equal(a, b);
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f, 1f)]
    [InlineData(1f, -3, 1f, 0f, 1f)]
    [InlineData(1f, 0, 0f, 0f, 1f)]
    [InlineData(1f, 0, 1f, 2f, 1f)]
    [InlineData(1f, 0, 1f, 0f, 0f)]
    public void Out_of_range_options_are_refused(float t, int k, float p, float minP, float rep) =>
        Assert.Throws<AnyBitException>(() => new SamplingOptions { Temperature = t, TopK = k, TopP = p, MinP = minP, RepetitionPenalty = rep }.Validate());
}
