namespace AnyBit.Models;

/// <summary>
/// Timings of one generation, for <c>anybit run --json</c>. <c>PromptTokens</c> counts the prompt tokens processed
/// (a prefix reused from a cache is not: see <see cref="Inference.GenerationUsage.CachedTokens"/>).
/// </summary>
public sealed record GenerationTimings(double PromptSeconds, int PromptTokens, double GenerationSeconds, int GeneratedTokens)
{
    public double PromptTokensPerSecond => PromptSeconds > 0 ? PromptTokens / PromptSeconds : 0;
    public double GenerationTokensPerSecond => GenerationSeconds > 0 ? GeneratedTokens / GenerationSeconds : 0;
}

/// <summary>Autoregressive generation: prefill the prompt as one batch, then one token at a time.</summary>
public static class Generator
{
    /// <summary>
    /// Yields up to <paramref name="maxTokens"/> new tokens after <paramref name="prompt"/>. Stops at an end-of-sequence
    /// id when <paramref name="stopAtEos"/> (the EOS token is yielded before stopping) or when the context is full.
    /// </summary>
    public static IEnumerable<int> Generate(InferenceSession session, int[] prompt, int maxTokens, Sampler sampler,
        bool stopAtEos = true, CancellationToken cancellation = default, Action<GenerationTimings>? onFinished = null)
    {
        if (prompt.Length == 0) throw new AnyBitException("the prompt is empty: give at least one token");
        if (prompt.Length > session.ContextSize)
            throw new AnyBitException($"the prompt has {prompt.Length} tokens, more than the context size of {session.ContextSize}");
        var config = session.Model.Config;
        var history = new int[prompt.Length + Math.Max(0, maxTokens)];
        prompt.CopyTo(history, 0);
        int count = prompt.Length;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        session.Reset();
        session.Forward(prompt);
        var single = new int[1];
        double promptSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        int generated = 0;
        try
        {
            while (generated < maxTokens)
            {
                cancellation.ThrowIfCancellationRequested();
                int next = sampler.Sample(session.LastLogits, history.AsSpan(0, count));
                history[count++] = next;
                generated++;
                yield return next;
                if (stopAtEos && Array.IndexOf(config.EosTokenIds, next) >= 0) break;
                if (generated >= maxTokens || session.Position >= session.ContextSize) break;
                single[0] = next;
                session.Forward(single);
            }
        }
        finally
        {
            onFinished?.Invoke(new GenerationTimings(promptSeconds, prompt.Length, clock.Elapsed.TotalSeconds, generated));
        }
    }

    /// <summary>Greedy continuation of <paramref name="prompt"/> (convenience for tests and scripts).</summary>
    public static int[] Greedy(Transformer model, int[] prompt, int newTokens, bool stopAtEos = true)
    {
        using var session = model.CreateSession(prompt.Length + newTokens);
        var sampler = new Sampler(new SamplingOptions { Temperature = 0 }, model.Config.VocabSize);
        return Generate(session, prompt, newTokens, sampler, stopAtEos).ToArray();
    }
}
