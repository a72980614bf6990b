namespace AnyBit.Text;

/// <summary>
/// Applies ranked BPE merges to a sequence of symbols: repeatedly merge the adjacent pair with the lowest merge rank
/// (leftmost first on ties) until no pair has a merge. A priority queue over a linked list of symbols keeps it
/// O(n log n), so a long unsplit SentencePiece segment stays fast. With <c>ranks</c> = negated scores the same
/// machinery runs SentencePiece's score-based merging.
/// </summary>
public sealed class BpeMerger
{
    /// <summary>Looks up whether two adjacent symbols merge: the merge's priority (lower first) and the merged id.</summary>
    public delegate bool PairLookup(int left, int right, out float rank, out int merged);

    private readonly PairLookup _lookup;

    public BpeMerger(PairLookup lookup) => _lookup = lookup;

    /// <summary>A merger over an explicit merge table (Hugging Face merges: rank = line number).</summary>
    public static BpeMerger FromTable(Dictionary<(int, int), (int Rank, int Merged)> table) =>
        new((int l, int r, out float rank, out int merged) =>
        {
            if (table.TryGetValue((l, r), out var m)) { rank = m.Rank; merged = m.Merged; return true; }
            rank = 0; merged = -1; return false;
        });

    /// <summary>Merges <paramref name="symbols"/> in place and returns the new length.</summary>
    public int Apply(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2) return n;
        var ids = symbols.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        // Queue entries: (rank, left position) → the right symbol id expected, to detect stale entries.
        var queue = new PriorityQueue<(int Left, int LeftId, int RightId, int Merged), (float Rank, int Pos)>();
        void Consider(int left)
        {
            int right = next[left];
            if (right < 0) return;
            if (_lookup(ids[left], ids[right], out float rank, out int merged))
                queue.Enqueue((left, ids[left], ids[right], merged), (rank, left));
        }
        for (int i = 0; i + 1 < n; i++) Consider(i);
        while (queue.TryDequeue(out var e, out _))
        {
            int left = e.Left;
            if (!alive[left] || ids[left] != e.LeftId) continue;
            int right = next[left];
            if (right < 0 || ids[right] != e.RightId) continue;
            ids[left] = e.Merged;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            if (prev[left] >= 0) Consider(prev[left]);
            Consider(left);
        }
        symbols.Clear();
        for (int i = 0; i >= 0 && i < n; i = next[i]) symbols.Add(ids[i]);
        return symbols.Count;
    }
}
