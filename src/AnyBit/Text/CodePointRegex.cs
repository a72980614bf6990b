using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace AnyBit.Text;

/// <summary>
/// Turns a tokenizer's pre-tokenizer pattern (written for Rust's regex / Oniguruma, which match code points) into a
/// .NET pattern that behaves the same on UTF-16 strings.
/// </summary>
/// <remarks>
/// .NET's Regex works on UTF-16 code units: <c>\p{S}</c>, <c>\p{L}</c>, <c>\p{N}</c>... never match a character
/// outside the Basic Multilingual Plane (emoji, math letters and digits, CJK extension B), and a negated class such
/// as <c>[^\s\p{L}\p{N}]</c> matches each half of its surrogate pair separately. So, on DeepSeek V3's pattern, the
/// space before an emoji was split off from it, and an astral letter counted as punctuation. No .NET regex option
/// changes that, and Microsoft.ML.Tokenizers takes a .NET Regex, hence this rewrite rather than a matcher of our own:
/// <list type="bullet">
/// <item>a Unicode class (<c>\p{X}</c>, <c>\P{X}</c>, <c>\d</c>, <c>\w</c> and their negations, alone or inside
/// <c>[...]</c>) also matches the surrogate pairs of the astral code points in it, written as an alternation of
/// high surrogate + low-surrogate ranges generated from <see cref="CharUnicodeInfo.GetUnicodeCategory(int)"/>;</item>
/// <item>a negated class, <c>.</c>, <c>\S</c>, <c>\W</c>, <c>\D</c> match a surrogate pair as one character (and a
/// lone surrogate as one), never half of a pair;</item>
/// <item><c>\x{HHHH}</c> (Rust, Oniguruma) becomes the character itself.</item>
/// </list>
/// Everything else (groups, alternation, quantifiers, anchors, lookaround, <c>(?i:...)</c>) is passed through:
/// wrapping each rewritten class in <c>(?:...)</c> keeps quantifiers such as <c>\p{N}{1,3}</c> counting code points.
/// Named Unicode classes .NET lacks (scripts such as <c>\p{Han}</c>) fail with a clear error.
/// </remarks>
public static class CodePointRegex
{
    private const string Pair = @"[\uD800-\uDBFF][\uDC00-\uDFFF]";
    private const string LoneSurrogate = @"[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]";

    /// <summary>Compiles <paramref name="pattern"/> with code-point semantics.</summary>
    public static Regex Create(string pattern, RegexOptions options = RegexOptions.None) =>
        new(Translate(pattern), options | RegexOptions.CultureInvariant);

    /// <summary>The .NET pattern equivalent to <paramref name="pattern"/> on code points.</summary>
    public static string Translate(string pattern)
    {
        var sb = new StringBuilder(pattern.Length);
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '[') { sb.Append(TranslateClass(pattern, ref i)); continue; }
            if (c == '.') { sb.Append("(?:" + Pair + "|.)"); i++; continue; }
            if (c != '\\' || i + 1 >= pattern.Length) { sb.Append(c); i++; continue; }
            var item = ReadEscape(pattern, ref i);
            if (item.Set is { } set) sb.Append(ClassPattern(set.Items, set.Astral, negated: false));
            else if (item.Literal is int cp) sb.Append(cp < 0x10000 ? $"\\u{cp:X4}" : "(?:" + char.ConvertFromUtf32(cp) + ")");
            else sb.Append(item.Raw);
        }
        return sb.ToString();
    }

    /// <summary>A Unicode set in a pattern: its .NET class items (for the BMP) and its astral code points.</summary>
    private sealed record UnicodeSet(string Items, AstralSet Astral);

    /// <summary>One parsed escape: a Unicode set, a single code point, or text to copy as it is.</summary>
    private readonly record struct Escape(UnicodeSet? Set, int? Literal, string? Raw);

    /// <summary>Reads the escape at <paramref name="i"/> (a backslash) and moves past it.</summary>
    private static Escape ReadEscape(string p, ref int i)
    {
        char e = p[i + 1];
        switch (e)
        {
            case 'p' or 'P':
            {
                string name;
                if (i + 2 < p.Length && p[i + 2] == '{')
                {
                    int end = p.IndexOf('}', i + 3);
                    if (end < 0) throw new ArgumentException($"unterminated \\{e}{{ in pattern");
                    name = p[(i + 3)..end];
                    i = end + 1;
                }
                else
                {
                    if (i + 2 >= p.Length) throw new ArgumentException($"\\{e} without a class name in pattern");
                    name = p[i + 2].ToString();
                    i += 3;
                }
                // .NET knows general categories and BMP block names (IsGreek, ...); blocks have no astral part
                // here. Other names (scripts such as Han) make .NET's Regex throw, which the loader reports.
                var astral = AstralSet.Category(name) ?? AstralSet.Empty;
                return new Escape(new UnicodeSet($"\\{e}{{{name}}}", e == 'P' ? astral.Complement() : astral), null, null);
            }
            case 'd' or 'D':
                i += 2;
                return new Escape(new UnicodeSet(e == 'd' ? @"\p{Nd}" : @"\P{Nd}", e == 'd' ? Digits : Digits.Complement()), null, null);
            case 'w' or 'W':
                // .NET's \w: letters, non-spacing marks, decimal digits and connector punctuation.
                i += 2;
                return new Escape(new UnicodeSet("\\" + e, e == 'w' ? Word : Word.Complement()), null, null);
            case 'S':
                // No astral code point is white space, so \S takes every one.
                i += 2;
                return new Escape(new UnicodeSet(@"\S", AstralSet.All), null, null);
            case 'x' when i + 2 < p.Length && p[i + 2] == '{':
            {
                int end = p.IndexOf('}', i + 3);
                if (end < 0 || !int.TryParse(p.AsSpan(i + 3, end - i - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp) || cp > 0x10FFFF)
                    throw new ArgumentException("bad \\x{...} escape in pattern");
                i = end + 1;
                return new Escape(null, cp, null);
            }
            default:
            {
                // \s (no astral white space exists), \r, \n, \t, \\, \-, \uXXXX, \xXX, \b, ... mean the same in .NET.
                int start = i;
                i += 2;
                if (e == 'u') i = Math.Min(p.Length, i + 4);
                else if (e == 'x') i = Math.Min(p.Length, i + 2);
                return new Escape(null, null, p[start..i]);
            }
        }
    }

    private static readonly AstralSet Digits = AstralSet.Category("Nd")!;
    private static readonly AstralSet Word = AstralSet.Category("L")!.Union(AstralSet.Category("Mn")!).Union(Digits).Union(AstralSet.Category("Pc")!);

    /// <summary>
    /// Translates the class at <paramref name="i"/> (its "["): BMP members stay a .NET class, astral members (of
    /// Unicode sets, and astral literals) are collected as code points.
    /// </summary>
    private static string TranslateClass(string p, ref int i)
    {
        int start = i++;
        bool negated = i < p.Length && p[i] == '^';
        if (negated) i++;
        var items = new StringBuilder();
        var astral = AstralSet.Empty;
        bool first = true;
        while (true)
        {
            if (i >= p.Length) throw new ArgumentException($"unterminated character class at {start} in pattern");
            char c = p[i];
            if (c == ']' && !first) { i++; break; }
            first = false;
            if (c == '[') throw new ArgumentException("nested character classes are not supported in pattern");
            if (c == '\\' && i + 1 < p.Length)
            {
                int at = i;
                var item = ReadEscape(p, ref i);
                if (item.Set is { } set) { items.Append(set.Items); astral = astral.Union(set.Astral); continue; }
                if (item.Raw is { } raw && !IsRangeStart(p, i)) { items.Append(raw); continue; }
                i = at;
            }
            int lo = ReadClassChar(p, ref i), hi = lo;
            if (IsRangeStart(p, i))
            {
                i++;
                hi = ReadClassChar(p, ref i);
                if (hi < lo) throw new ArgumentException("reversed range in character class in pattern");
            }
            if (lo < 0x10000) items.Append($"\\u{lo:X4}").Append(hi > lo ? $"-\\u{Math.Min(hi, 0xFFFF):X4}" : "");
            if (hi >= 0x10000) astral = astral.Union(AstralSet.Range(lo, hi));
        }
        return ClassPattern(items.ToString(), astral, negated);
    }

    private static bool IsRangeStart(string p, int i) => i + 1 < p.Length && p[i] == '-' && p[i + 1] != ']';

    /// <summary>Reads one literal code point of a class: a character, a surrogate pair, or an escape for one.</summary>
    private static int ReadClassChar(string p, ref int i)
    {
        char c = p[i];
        if (char.IsHighSurrogate(c) && i + 1 < p.Length && char.IsLowSurrogate(p[i + 1])) { i += 2; return char.ConvertToUtf32(c, p[i - 1]); }
        if (c != '\\' || i + 1 >= p.Length) { i++; return c; }
        var item = ReadEscape(p, ref i);
        if (item.Literal is int cp) return cp;
        string raw = item.Raw ?? throw new ArgumentException("a class escape cannot end a range in pattern");
        int value = raw[1] switch
        {
            'u' or 'x' when raw.Length > 2 && int.TryParse(raw.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int h) => h,
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'f' => '\f',
            'v' => '\v',
            '0' => 0,
            char other when !char.IsAsciiLetterOrDigit(other) => other,
            _ => throw new ArgumentException($"unsupported escape {raw} in a character class range in pattern"),
        };
        return value;
    }

    /// <summary>
    /// A pattern matching one code point of the set: BMP characters from the .NET class (never a surrogate half),
    /// astral code points as surrogate pairs, and a lone surrogate (category Cs) where the set holds Cs. A negated
    /// set matches every code point outside it, a surrogate pair as one.
    /// </summary>
    private static string ClassPattern(string items, AstralSet astral, bool negated)
    {
        bool holdsSurrogates = items.Length > 0 && new Regex("[" + items + "]", RegexOptions.CultureInvariant).IsMatch("\uD800") != negated;
        if (negated) astral = astral.Complement();
        var alternatives = new List<string>();
        if (negated) alternatives.Add("[^" + items + @"\uD800-\uDFFF]");
        else if (items.Length > 0) alternatives.Add("[" + items + @"-[\uD800-\uDFFF]]");
        if (!astral.IsEmpty) alternatives.Add(astral.SurrogatePattern());
        if (holdsSurrogates || (negated && items.Length == 0)) alternatives.Add(LoneSurrogate);
        if (alternatives.Count == 0) return "(?!)";
        return alternatives.Count == 1 && !negated && astral.IsEmpty ? alternatives[0] : "(?:" + string.Join("|", alternatives) + ")";
    }
}
