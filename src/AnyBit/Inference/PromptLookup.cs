namespace AnyBit.Inference;

/// <summary>
/// Prompt-lookup drafting (n-gram speculation, no draft model): the tokens that followed the most recent earlier
/// occurrence of the sequence's last n tokens are proposed as its continuation, trying n = <see cref="MaxNgram"/>
/// down to <see cref="MinNgram"/>. It pays off where the output repeats its input: code edits, summaries,
/// extraction, chat that quotes the conversation (llama.cpp's <c>llama-lookup</c>, Saxena's prompt lookup decoding).
/// </summary>
public sealed record PromptLookup
{
    /// <summary>Most tokens proposed per step (llama.cpp's <c>--draft-max</c>; default 10).</summary>
    public int MaxDraft { get; init; } = 10;

    /// <summary>Longest suffix matched (default 3).</summary>
    public int MaxNgram { get; init; } = 3;

    /// <summary>Shortest suffix matched (default 1).</summary>
    public int MinNgram { get; init; } = 1;

    /// <summary>Throws an <see cref="AnyBitException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (MaxDraft is < 1 or > 64) throw new AnyBitException($"draft length {MaxDraft} must be between 1 and 64");
        if (MinNgram < 1 || MaxNgram < MinNgram || MaxNgram > 16)
            throw new AnyBitException($"n-gram lengths {MinNgram}..{MaxNgram} must satisfy 1 ≤ min ≤ max ≤ 16");
    }

    /// <summary>
    /// Writes up to <paramref name="draft"/>.Length proposed tokens after <paramref name="history"/> into
    /// <paramref name="draft"/> and returns how many (0 when no suffix of n ≥ MinNgram tokens occurred before).
    /// </summary>
    /// <remarks>A backward scan per n: O(history × n) per step, microseconds beside a forward pass for the
    /// contexts a CPU decodes; an index of n-grams would serve contexts of 100k tokens.</remarks>
    public int Propose(ReadOnlySpan<int> history, Span<int> draft)
    {
        int count = history.Length;
        if (draft.IsEmpty) return 0;
        for (int n = Math.Min(MaxNgram, count - 1); n >= MinNgram; n--)
        {
            var suffix = history[(count - n)..];
            // The most recent earlier occurrence: start s < count − n, so at least one token follows it.
            for (int s = count - n - 1; s >= 0; s--)
            {
                if (!history.Slice(s, n).SequenceEqual(suffix)) continue;
                int take = Math.Min(Math.Min(draft.Length, MaxDraft), count - (s + n));
                history.Slice(s + n, take).CopyTo(draft);
                return take;
            }
        }
        return 0;
    }
}
