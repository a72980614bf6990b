using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace AnyBit.Text;

/// <summary>One piece of text on its way through a tokenizer pipeline; <c>AtStart</c> marks the piece at offset 0 of the input.</summary>
internal readonly record struct TextPiece(string Text, bool AtStart);

/// <summary>A text normalizer step from tokenizer.json.</summary>
internal abstract class NormalizerStep
{
    public abstract string Apply(string text);
}

/// <summary>NFC/NFD/NFKC/NFKD by AnyBit's own tables: string.Normalize does nothing under InvariantGlobalization.</summary>
internal sealed class UnicodeNormalizer(NormalizationForm form) : NormalizerStep
{
    public override string Apply(string text) => UnicodeNormalization.Normalize(text, form);
}

internal sealed class LowercaseNormalizer : NormalizerStep
{
    public override string Apply(string text) => text.ToLowerInvariant();
}

internal sealed class PrependNormalizer(string prefix) : NormalizerStep
{
    public override string Apply(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class ReplaceNormalizer(Regex pattern, string content) : NormalizerStep
{
    public override string Apply(string text) => pattern.Replace(text, content.Replace("$", "$$"));
}

/// <summary>A pre-tokenizer step from tokenizer.json: splits pieces into smaller pieces (and may rewrite them).</summary>
internal abstract class PreTokenizerStep
{
    public abstract void Apply(List<TextPiece> pieces);

    /// <summary>Splits each piece around regex matches with one of tokenizers' "SplitDelimiterBehavior"s.</summary>
    protected static void SplitAll(List<TextPiece> pieces, Regex pattern, string behavior)
    {
        var result = new List<TextPiece>(pieces.Count * 4);
        foreach (var p in pieces)
        {
            int last = 0;
            bool first = p.AtStart;
            string? carry = null; // for MergedWithNext
            void Emit(string s)
            {
                if (s.Length == 0) return;
                result.Add(new TextPiece(s, first));
                first = false;
            }
            foreach (Match m in pattern.Matches(p.Text))
            {
                if (m.Length == 0) continue;
                string before = p.Text[last..m.Index];
                switch (behavior)
                {
                    case "Isolated":
                        Emit((carry ?? "") + before); carry = null;
                        Emit(m.Value);
                        break;
                    case "Removed":
                        Emit((carry ?? "") + before); carry = null;
                        break;
                    case "MergedWithPrevious":
                        Emit((carry ?? "") + before + m.Value); carry = null;
                        break;
                    case "MergedWithNext":
                        Emit((carry ?? "") + before);
                        carry = m.Value;
                        break;
                    default:
                        throw new AnyBitException($"tokenizer.json: split behavior '{behavior}' is not supported");
                }
                last = m.Index + m.Length;
            }
            Emit((carry ?? "") + p.Text[last..]);
        }
        pieces.Clear();
        pieces.AddRange(result);
    }
}

/// <summary>
/// GPT-2 style byte-level pre-tokenizer: optional prefix space, optional split by GPT-2's regex, then every UTF-8 byte
/// rewritten as its printable stand-in character.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
{
    public bool AddPrefixSpace => addPrefixSpace;
    public bool UseRegex => useRegex;

    /// <summary>The GPT-2 pattern tokenizers uses when ByteLevel has <c>use_regex: true</c>.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Regex Gpt2 = CodePointRegex.Create(Gpt2Pattern, RegexOptions.Compiled);

    public override void Apply(List<TextPiece> pieces)
    {
        if (addPrefixSpace)
            for (int i = 0; i < pieces.Count; i++)
                if (pieces[i].AtStart && !pieces[i].Text.StartsWith(' ')) pieces[i] = pieces[i] with { Text = " " + pieces[i].Text };
        if (useRegex) SplitAll(pieces, Gpt2, "Isolated");
        for (int i = 0; i < pieces.Count; i++) pieces[i] = pieces[i] with { Text = ToByteChars(pieces[i].Text) };
    }

    public static string ToByteChars(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteLevelAlphabet.ByteToChar[bytes[i]];
        return new string(chars);
    }
}

/// <summary>tokenizers' Split: <paramref name="source"/> is the pattern as the file writes it, <paramref name="pattern"/> its compiled form.</summary>
internal sealed class SplitPreTokenizer(string source, Regex pattern, string behavior) : PreTokenizerStep
{
    public string Source => source;
    public Regex Pattern => pattern;
    public string Behavior => behavior;

    public override void Apply(List<TextPiece> pieces) => SplitAll(pieces, pattern, behavior);
}

internal sealed class DigitsPreTokenizer(bool individual) : PreTokenizerStep
{
    private static readonly Regex Each = new(@"\p{Nd}", RegexOptions.Compiled);
    private static readonly Regex Runs = new(@"\p{Nd}+", RegexOptions.Compiled);
    public override void Apply(List<TextPiece> pieces) => SplitAll(pieces, individual ? Each : Runs, "Isolated");
}

internal sealed class WhitespacePreTokenizer : PreTokenizerStep
{
    private static readonly Regex Words = CodePointRegex.Create(@"\w+|[^\w\s]+", RegexOptions.Compiled);
    public override void Apply(List<TextPiece> pieces)
    {
        var result = new List<TextPiece>();
        foreach (var p in pieces)
        {
            bool first = p.AtStart;
            foreach (Match m in Words.Matches(p.Text)) { result.Add(new TextPiece(m.Value, first)); first = false; }
        }
        pieces.Clear();
        pieces.AddRange(result);
    }
}

/// <summary>
/// SentencePiece's Metaspace: spaces become ▁ and a ▁ is prepended ("always", or "first" = only to the piece at the
/// start of the input, and never twice); optionally split so that each ▁ starts a new piece.
/// </summary>
internal sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : PreTokenizerStep
{
    public override void Apply(List<TextPiece> pieces)
    {
        for (int i = 0; i < pieces.Count; i++)
        {
            var p = pieces[i];
            string t = p.Text.Replace(' ', replacement);
            bool prepend = prependScheme == "always" || (prependScheme == "first" && p.AtStart);
            if (prepend && !t.StartsWith(replacement)) t = replacement + t;
            pieces[i] = p with { Text = t };
        }
        if (split) SplitAll(pieces, new Regex(Regex.Escape(replacement.ToString())), "MergedWithNext");
    }
}

internal static class Utf8Chars
{
    /// <summary>Unicode scalar values of a string (surrogate pairs kept together), as tokenizers' char iteration.</summary>
    public static IEnumerable<string> Scalars(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                yield return s.Substring(i, 2);
                i++;
            }
            else yield return s[i].ToString();
        }
    }

    public static bool IsByteToken(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
