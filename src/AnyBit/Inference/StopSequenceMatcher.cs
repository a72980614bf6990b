namespace AnyBit.Inference;

/// <summary>
/// Finds stop sequences in streamed text. Text that could still be the start of a stop sequence is held back
/// until the next piece decides it, so a stop sequence never reaches the output even when it spans tokens.
/// </summary>
public sealed class StopSequenceMatcher(IReadOnlyList<string> stops)
{
    private string _pending = "";

    /// <summary>True once a stop sequence has been seen.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text; returns what may be emitted now.</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        if (stops.Count == 0) return piece;
        _pending += piece;
        int cut = -1;
        foreach (var s in stops)
        {
            int at = _pending.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            string before = _pending[..cut];
            _pending = "";
            return before;
        }
        int hold = 0;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                if (_pending.AsSpan(_pending.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        string ready = _pending[..^hold];
        _pending = _pending[^hold..];
        return ready;
    }

    /// <summary>Releases held-back text at the end of generation (it did not become a stop sequence).</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _pending;
        _pending = "";
        return rest;
    }
}
