using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace AnyBit.Text;

/// <summary>
/// A set of astral code points (U+10000..U+10FFFF) as sorted, disjoint ranges, and its regex over UTF-16: the
/// surrogate pairs that encode exactly those code points. Used by <see cref="CodePointRegex"/>.
/// </summary>
internal sealed class AstralSet
{
    public const int First = 0x10000, Last = 0x10FFFF;

    private readonly List<(int Lo, int Hi)> _ranges;

    private AstralSet(List<(int Lo, int Hi)> ranges) => _ranges = ranges;

    public static readonly AstralSet Empty = new([]);
    public static readonly AstralSet All = new([(First, Last)]);

    public bool IsEmpty => _ranges.Count == 0;

    private static readonly ConcurrentDictionary<string, AstralSet?> ByCategory = new();

    /// <summary>
    /// The astral code points of a general category, by its one- or two-letter name (L, Lu, N, Nd, S, So, ...), as
    /// .NET classifies them (<see cref="CharUnicodeInfo.GetUnicodeCategory(int)"/>); null for other names.
    /// </summary>
    public static AstralSet? Category(string name) => ByCategory.GetOrAdd(name, n =>
    {
        if (n.Length is not (1 or 2)) return null;
        var categories = Enum.GetValues<UnicodeCategory>().Where(c => CategoryName(c).StartsWith(n, StringComparison.Ordinal)).ToHashSet();
        return categories.Count == 0 ? null : Where(cp => categories.Contains(CharUnicodeInfo.GetUnicodeCategory(cp)));
    });

    /// <summary>The astral code points for which <paramref name="member"/> holds.</summary>
    public static AstralSet Where(Func<int, bool> member)
    {
        var ranges = new List<(int, int)>();
        int start = -1;
        for (int cp = First; cp <= Last + 1; cp++)
        {
            bool inside = cp <= Last && member(cp);
            if (inside && start < 0) start = cp;
            else if (!inside && start >= 0) { ranges.Add((start, cp - 1)); start = -1; }
        }
        return new AstralSet(ranges);
    }

    public static AstralSet Range(int lo, int hi) => new([(Math.Max(lo, First), Math.Min(hi, Last))]);

    public AstralSet Union(AstralSet other)
    {
        if (other.IsEmpty) return this;
        if (IsEmpty) return other;
        var all = _ranges.Concat(other._ranges).OrderBy(r => r.Lo).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var r in all)
            if (merged.Count > 0 && r.Lo <= merged[^1].Hi + 1) merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, r.Hi));
            else merged.Add(r);
        return new AstralSet(merged);
    }

    public AstralSet Complement()
    {
        var result = new List<(int, int)>();
        int next = First;
        foreach (var (lo, hi) in _ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= Last) result.Add((next, Last));
        return new AstralSet(result);
    }

    /// <summary>
    /// A .NET pattern matching the surrogate pairs of this set's code points: for each high surrogate the class of
    /// low surrogates allowed after it, high surrogates with the same low class grouped into one class.
    /// </summary>
    public string SurrogatePattern()
    {
        if (IsEmpty) return "(?!)";
        var lowsByHigh = new SortedDictionary<int, List<(int, int)>>();
        foreach (var (lo, hi) in _ranges)
            for (int h = lo >> 10; h <= hi >> 10; h++)
            {
                int a = Math.Max(lo, h << 10) & 0x3FF, b = Math.Min(hi, (h << 10) | 0x3FF) & 0x3FF;
                if (!lowsByHigh.TryGetValue(h, out var lows)) lowsByHigh[h] = lows = [];
                lows.Add((a, b));
            }
        // Group highs by their low-surrogate class, keeping first-appearance order for a stable pattern.
        var groups = new Dictionary<string, List<int>>();
        var order = new List<string>();
        foreach (var (h, lows) in lowsByHigh)
        {
            string lowClass = ClassOf(lows.Select(r => (0xDC00 + r.Item1, 0xDC00 + r.Item2)));
            if (!groups.TryGetValue(lowClass, out var highs)) { groups[lowClass] = highs = []; order.Add(lowClass); }
            highs.Add(0xD800 + (h - (First >> 10)));
        }
        var alternatives = order.Select(low => ClassOf(Runs(groups[low])) + low);
        return "(?:" + string.Join("|", alternatives) + ")";
    }

    private static IEnumerable<(int, int)> Runs(List<int> sorted)
    {
        int start = sorted[0], prev = sorted[0];
        foreach (int x in sorted.Skip(1))
        {
            if (x == prev + 1) { prev = x; continue; }
            yield return (start, prev);
            start = prev = x;
        }
        yield return (start, prev);
    }

    private static string ClassOf(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var list = ranges.ToList();
        if (list.Count == 1 && list[0].Lo == list[0].Hi) return $"\\u{list[0].Lo:X4}";
        var sb = new StringBuilder("[");
        foreach (var (lo, hi) in list)
        {
            sb.Append($"\\u{lo:X4}");
            if (hi > lo) sb.Append($"-\\u{hi:X4}");
        }
        return sb.Append(']').ToString();
    }

    /// <summary>The two-letter abbreviation of a category (Lu, Nd, So, ...), as regex \p{..} names it.</summary>
    private static string CategoryName(UnicodeCategory c) => c switch
    {
        UnicodeCategory.UppercaseLetter => "Lu",
        UnicodeCategory.LowercaseLetter => "Ll",
        UnicodeCategory.TitlecaseLetter => "Lt",
        UnicodeCategory.ModifierLetter => "Lm",
        UnicodeCategory.OtherLetter => "Lo",
        UnicodeCategory.NonSpacingMark => "Mn",
        UnicodeCategory.SpacingCombiningMark => "Mc",
        UnicodeCategory.EnclosingMark => "Me",
        UnicodeCategory.DecimalDigitNumber => "Nd",
        UnicodeCategory.LetterNumber => "Nl",
        UnicodeCategory.OtherNumber => "No",
        UnicodeCategory.SpaceSeparator => "Zs",
        UnicodeCategory.LineSeparator => "Zl",
        UnicodeCategory.ParagraphSeparator => "Zp",
        UnicodeCategory.Control => "Cc",
        UnicodeCategory.Format => "Cf",
        UnicodeCategory.Surrogate => "Cs",
        UnicodeCategory.PrivateUse => "Co",
        UnicodeCategory.ConnectorPunctuation => "Pc",
        UnicodeCategory.DashPunctuation => "Pd",
        UnicodeCategory.OpenPunctuation => "Ps",
        UnicodeCategory.ClosePunctuation => "Pe",
        UnicodeCategory.InitialQuotePunctuation => "Pi",
        UnicodeCategory.FinalQuotePunctuation => "Pf",
        UnicodeCategory.OtherPunctuation => "Po",
        UnicodeCategory.MathSymbol => "Sm",
        UnicodeCategory.CurrencySymbol => "Sc",
        UnicodeCategory.ModifierSymbol => "Sk",
        UnicodeCategory.OtherSymbol => "So",
        UnicodeCategory.OtherNotAssigned => "Cn",
        _ => "",
    };
}
