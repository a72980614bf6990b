namespace AnyBit.Models;

/// <summary>
/// Timings of one generation, for <c>anybit run --json</c>. <c>PromptTokens</c> counts the prompt tokens processed
/// (a prefix reused from a cache is not: see <see cref="Inference.GenerationUsage.CachedTokens"/>).
/// </summary>
public sealed record GenerationTimings(double PromptSeconds, int PromptTokens, double GenerationSeconds, int GeneratedTokens)
{
    /// <summary>Tokens a draft proposed (speculative decoding; 0 without).</summary>
    public int DraftTokens { get; init; }

    /// <summary>Proposed tokens the model accepted.</summary>
    public int AcceptedTokens { get; init; }

    public double PromptTokensPerSecond => PromptSeconds > 0 ? PromptTokens / PromptSeconds : 0;
    public double GenerationTokensPerSecond => GenerationSeconds > 0 ? GeneratedTokens / GenerationSeconds : 0;
}

/// <summary>
/// Autoregressive generation: prefill the prompt as one batch, then one token at a time — or, with a draft
/// (<see cref="Inference.PromptLookup"/>), several at a time: the proposed tokens are verified in one batched forward pass
/// (the weights read once for all of them), the longest prefix the model itself would have produced is kept and the
/// cache rewound past the first mismatch.
/// </summary>
public static class Generator
{
    /// <summary>
    /// Yields up to <paramref name="maxTokens"/> new tokens after <paramref name="prompt"/>. Stops at an end-of-sequence
    /// id when <paramref name="stopAtEos"/> (the EOS token is yielded before stopping) or when the context is full.
    /// With <paramref name="lookup"/>, tokens are drafted by prompt lookup and verified in batches: greedy output is the
    /// same token for token (a draft stands only where it is the argmax of the model's own logits there), and sampled
    /// output follows the same distribution (<see cref="Sampler.Verify"/>), though not the same random stream.
    /// </summary>
    public static IEnumerable<int> Generate(InferenceSession session, int[] prompt, int maxTokens, Sampler sampler,
        bool stopAtEos = true, CancellationToken cancellation = default, Action<GenerationTimings>? onFinished = null,
        Inference.PromptLookup? lookup = null)
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
        int generated = 0, drafted = 0, accepted = 0;
        bool speculate = lookup is not null;
        int vocab = config.VocabSize, maxDraft = speculate ? lookup!.MaxDraft : 0;
        var batch = new int[maxDraft + 1];
        var rows = speculate ? new float[(long)(maxDraft + 1) * vocab] : [];
        int row = -1; // the logits the next token is sampled from: session.LastLogits (−1), or a row of rows
        // Draft length adapts to what was accepted: one more than the last accepted run, growing by two after a fully
        // accepted draft, so a draft that keeps failing costs a two-token pass (about one token's weight traffic).
        int draftLength = maxDraft;
        int pending = -1; // a token already chosen (a rejected draft's replacement), not yet sampled from logits
        try
        {
            while (generated < maxTokens)
            {
                cancellation.ThrowIfCancellationRequested();
                int next = pending >= 0 ? pending
                    : sampler.Sample(row < 0 ? session.LastLogits : rows.AsSpan(row * vocab, vocab), history.AsSpan(0, count));
                pending = -1;
                history[count++] = next;
                generated++;
                yield return next;
                if (stopAtEos && Array.IndexOf(config.EosTokenIds, next) >= 0) break;
                if (generated >= maxTokens || session.Position >= session.ContextSize) break;
                // Draft no more than can be emitted or stored: next plus k tokens enter the cache.
                int room = Math.Min(maxTokens - generated, session.ContextSize - session.Position - 1);
                int k = speculate && room > 0 ? lookup!.Propose(history.AsSpan(0, count), batch.AsSpan(1, Math.Min(draftLength, room))) : 0;
                if (k == 0)
                {
                    single[0] = next;
                    session.Forward(single);
                    row = -1;
                    continue;
                }
                batch[0] = next;
                int start = session.Position;
                session.Forward(batch.AsSpan(0, k + 1), rows.AsSpan(0, (k + 1) * vocab));
                drafted += k;
                // Row i holds the logits after batch[i]: draft token i + 1 stands if the sampler keeps it there
                // (Sampler.Verify: exact in distribution; the argmax when greedy), else its replacement comes next.
                int i = 0;
                bool stop = false;
                for (; i < k; i++)
                {
                    int verified = sampler.Verify(rows.AsSpan(i * vocab, vocab), history.AsSpan(0, count), batch[i + 1], out bool kept);
                    if (!kept) { pending = verified; break; }
                    history[count++] = verified;
                    generated++;
                    accepted++;
                    yield return verified;
                    if ((stopAtEos && Array.IndexOf(config.EosTokenIds, verified) >= 0) || generated >= maxTokens) { stop = true; break; }
                }
                if (stop) break;
                draftLength = i == k ? Math.Min(maxDraft, k + 2) : Math.Max(1, i + 1);
                // Keep next and the accepted tokens; the first rejected one's replacement is the next token.
                if (i < k) session.Rewind(start + i + 1);
                row = i;
            }
        }
        finally
        {
            // Stopped while verifying a draft (a limit, an end-of-sequence, cancellation or the caller leaving the
            // loop): drop the positions of draft tokens not emitted, so the cache holds exactly the emitted tokens but
            // the last, as after plain decoding.
            if (speculate && session.Position > count - 1) session.Rewind(Math.Max(prompt.Length, count - 1));
            onFinished?.Invoke(new GenerationTimings(promptSeconds, prompt.Length, clock.Elapsed.TotalSeconds, generated)
                { DraftTokens = drafted, AcceptedTokens = accepted });
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
