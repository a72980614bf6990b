using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>Continuous batching: one batched decode step gives each sequence what its own step would.</summary>
public class BatchDecodeTests
{
    [Theory]
    [InlineData("llama3-bpe")]
    [InlineData("qwen3-bpe")]
    [InlineData("qwen2-bpe")]
    [InlineData("bitnet-bpe")]
    public void ForwardBatch_equals_separate_forwards_for_sequences_at_different_positions(string fixture)
    {
        using var model = ModelLoader.Load(Shared.Fixture("models", fixture));
        int vocab = model.Config.VocabSize;
        int[][] prompts = [[1, 5, 9], [2, 4, 6, 8, 10, 12, 14], [3, 7, 11, 13, 17]];
        int[] next = [20, 21, 22];

        var single = prompts.Select(_ => model.CreateSession(32)).ToArray();
        var batched = prompts.Select(_ => model.CreateSession(32)).ToArray();
        try
        {
            var expected = new float[prompts.Length][];
            for (int i = 0; i < prompts.Length; i++)
            {
                single[i].Forward(prompts[i]);
                expected[i] = single[i].Forward([next[i]]).ToArray();
                batched[i].Forward(prompts[i]);
            }
            InferenceSession.ForwardBatch(batched, next);
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.Equal(prompts[i].Length + 1, batched[i].Position);
                var actual = batched[i].LastLogits.ToArray();
                float scale = expected[i].Max(MathF.Abs);
                for (int v = 0; v < vocab; v++) Assert.True(MathF.Abs(actual[v] - expected[i][v]) <= 1e-5f * scale, $"{fixture} seq {i} logit {v}: {actual[v]} vs {expected[i][v]}");
            }
            // A second batched step continues each sequence from its own cache.
            InferenceSession.ForwardBatch(batched, [30, 31, 32]);
            for (int i = 0; i < prompts.Length; i++)
            {
                var reference = single[i].Forward([30 + i]).ToArray();
                var actual = batched[i].LastLogits.ToArray();
                float scale = reference.Max(MathF.Abs);
                for (int v = 0; v < vocab; v++) Assert.True(MathF.Abs(actual[v] - reference[v]) <= 1e-5f * scale);
            }
        }
        finally
        {
            foreach (var s in single.Concat(batched)) s.Dispose();
        }
    }

    [Fact]
    public void ForwardBatch_rejects_mixed_or_full_sessions()
    {
        using var model = ModelLoader.Load(Shared.Fixture("models", "llama3-bpe"));
        using var a = model.CreateSession(4);
        using var b = model.CreateSession(8);
        using var full = model.CreateSession(4);
        full.Forward([1, 2, 3, 4]);
        Assert.Throws<ArgumentException>(() => InferenceSession.ForwardBatch([a, b], [1, 2]));
        Assert.Throws<ArgumentException>(() => InferenceSession.ForwardBatch([a, a], [1, 2]));
        Assert.Throws<AnyBitException>(() => InferenceSession.ForwardBatch([a, full], [1, 2]));
        Assert.Equal(0, a.Position);
    }
}
