namespace AnyBit.Models;

/// <summary>
/// Chooses tokens from logits: repetition penalty → (greedy, or) top-k → softmax with temperature → top-p → min-p →
/// a draw from the renormalised distribution. All scratch is allocated once per vocabulary size, so sampling
/// allocates nothing per token. The generator is a seeded xorshift so that a seed reproduces a run exactly.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _o;
    private readonly float[] _logits;
    private readonly int[] _order;
    private readonly float[] _probs;
    private readonly bool[] _seen;
    private ulong _state;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _o = options;
        _logits = new float[vocabSize];
        _order = new int[vocabSize];
        _probs = new float[vocabSize];
        _seen = new bool[vocabSize];
        _state = options.Seed ?? (ulong)Random.Shared.NextInt64();
        if (_state == 0) _state = 0x9E3779B97F4A7C15;
    }

    public SamplingOptions Options => _o;

    /// <summary>Picks the next token given the logits and the tokens so far (for the repetition penalty).</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history) => Sample(logits, history, -1, out _);

    /// <summary>
    /// Verifies a drafted token: returns it with <paramref name="accepted"/> true where the target keeps it, else a
    /// replacement, so that the token returned follows exactly the distribution <see cref="Sample(ReadOnlySpan{float}, ReadOnlySpan{int})"/>
    /// draws from (every filter applied the same way). Greedy: the draft stands if it is the argmax.
    /// </summary>
    public int Verify(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, int draft, out bool accepted) => Sample(logits, history, draft, out accepted);

    private int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, int draft, out bool accepted)
    {
        accepted = false;
        var l = _logits.AsSpan(0, logits.Length);
        logits.CopyTo(l);
        if (_o.RepetitionPenalty != 1f)
        {
            var recent = history.Length > _o.RepetitionWindow ? history[^_o.RepetitionWindow..] : history;
            // Each distinct token is penalised once, however often it occurs in the window.
            foreach (int id in recent)
                if ((uint)id < (uint)l.Length && !_seen[id])
                {
                    _seen[id] = true;
                    l[id] = l[id] > 0 ? l[id] / _o.RepetitionPenalty : l[id] * _o.RepetitionPenalty;
                }
            foreach (int id in recent)
                if ((uint)id < (uint)l.Length) _seen[id] = false;
        }
        if (_o.Temperature == 0f)
        {
            int best = ArgMax(l);
            accepted = best == draft;
            return best;
        }

        int n = l.Length;
        var order = _order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = i;
        int keep = _o.TopK > 0 ? Math.Min(_o.TopK, n) : n;
        // Sort candidates by logit descending (only the top-k prefix matters when top-k is set).
        var keys = _probs.AsSpan(0, n);
        for (int i = 0; i < n; i++) keys[i] = -l[i];
        keys.Sort(order);
        // Softmax with temperature over the kept prefix.
        float max = l[order[0]];
        double sum = 0;
        for (int i = 0; i < keep; i++)
        {
            float p = MathF.Exp((l[order[i]] - max) / _o.Temperature);
            keys[i] = p;
            sum += p;
        }
        for (int i = 0; i < keep; i++) keys[i] = (float)(keys[i] / sum);
        if (_o.TopP < 1f)
        {
            double cum = 0;
            for (int i = 0; i < keep; i++)
            {
                cum += keys[i];
                if (cum >= _o.TopP) { keep = i + 1; break; }
            }
        }
        if (_o.MinP > 0f)
        {
            float threshold = _o.MinP * keys[0];
            int k = 1;
            while (k < keep && keys[k] >= threshold) k++;
            keep = k;
        }
        double total = 0;
        for (int i = 0; i < keep; i++) total += keys[i];
        if (draft >= 0)
        {
            // Speculative sampling with a draft that proposed one token for certain (q = δ_draft): keep it with
            // probability min(1, p/q) = p(draft), else sample from the residual max(0, p − q), normalized: p without
            // the draft. P(draft) = p(draft) and P(x) = (1 − p(draft))·p(x)/(1 − p(draft)) = p(x): the target's
            // distribution exactly.
            int at = order[..keep].IndexOf(draft);
            double pd = at < 0 ? 0 : keys[at];
            if (NextDouble() * total < pd) { accepted = true; return draft; }
            if (at >= 0)
            {
                total -= pd;
                keys[at] = 0;
                // The draft held all the mass (pd = total), rejected only where u·total rounded up to total.
                if (total <= 0) { accepted = true; return draft; }
            }
        }
        double r = NextDouble() * total;
        double acc = 0;
        for (int i = 0; i < keep; i++)
        {
            acc += keys[i];
            if (r < acc) return order[i];
        }
        for (int i = keep - 1; i >= 0; i--)
            if (keys[i] > 0) return order[i];
        return order[keep - 1];
    }

    /// <summary>Index of the largest logit (the first one on ties, as torch.argmax).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = logits[0];
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > bestValue) { bestValue = logits[i]; best = i; }
        return best;
    }

    private double NextDouble()
    {
        // xorshift64*: small, fast and good enough for sampling; reproducible from the seed.
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        ulong v = _state * 0x2545F4914F6CDD1DUL;
        return (v >> 11) * (1.0 / (1UL << 53));
    }
}
