using System.Globalization;
using System.Text;

namespace AnyBit.Text.Templates;

internal enum JinjaTokenKind { Text, VariableStart, VariableEnd, BlockStart, BlockEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Text, object? Value, int Position);

/// <summary>
/// Splits a Jinja template into text and tag tokens with Hugging Face's environment settings (trim_blocks and
/// lstrip_blocks on, as transformers' apply_chat_template configures them) and the <c>-</c> whitespace controls.
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] Operators =
        ["==", "!=", "<=", ">=", "//", "**", "<", ">", "+", "-", "*", "/", "%", "~", "(", ")", "[", "]", "{", "}", ".", ",", ":", "=", "|"];

    public static List<JinjaToken> Tokenize(string source)
    {
        var tokens = new List<JinjaToken>();
        int i = 0;
        bool stripNextLeading = false, trimNextNewline = false;
        while (i < source.Length)
        {
            int open = FindTagStart(source, i);
            int textEnd = open < 0 ? source.Length : open;
            string text = source[i..textEnd];
            if (trimNextNewline && text.StartsWith('\n')) text = text[1..];
            else if (trimNextNewline && text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
            if (stripNextLeading) text = text.TrimStart();
            stripNextLeading = trimNextNewline = false;
            if (open < 0)
            {
                if (text.Length > 0) tokens.Add(new(JinjaTokenKind.Text, text, null, i));
                break;
            }

            char kind = source[open + 1];
            bool minusBefore = open + 2 < source.Length && source[open + 2] == '-';
            bool plusBefore = open + 2 < source.Length && source[open + 2] == '+';
            if (minusBefore) text = text.TrimEnd();
            else if (kind != '{' && !plusBefore) text = LstripBlock(text);
            if (text.Length > 0) tokens.Add(new(JinjaTokenKind.Text, text, null, i));
            int p = open + 2 + (minusBefore || plusBefore ? 1 : 0);

            if (kind == '#')
            {
                int close = source.IndexOf("#}", p, StringComparison.Ordinal);
                if (close < 0) throw new JinjaException("unclosed comment", open);
                stripNextLeading = source[close - 1] == '-';
                trimNextNewline = true;
                i = close + 2;
                continue;
            }
            if (kind == '%' && IsRawStart(source, p, out int rawBody))
            {
                int endRaw = FindEndRaw(source, rawBody, out int afterEndRaw);
                tokens.Add(new(JinjaTokenKind.Text, source[rawBody..endRaw], null, rawBody));
                i = afterEndRaw;
                continue;
            }

            tokens.Add(new(kind == '{' ? JinjaTokenKind.VariableStart : JinjaTokenKind.BlockStart, "", null, open));
            string closer = kind == '{' ? "}}" : "%}";
            p = TokenizeExpression(source, p, closer, tokens, out bool minusAfter);
            tokens.Add(new(kind == '{' ? JinjaTokenKind.VariableEnd : JinjaTokenKind.BlockEnd, "", null, p));
            stripNextLeading = minusAfter;
            trimNextNewline = kind == '%';
            i = p + 2;
        }
        tokens.Add(new(JinjaTokenKind.End, "", null, source.Length));
        return tokens;
    }

    private static int FindTagStart(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>lstrip_blocks: spaces and tabs between the start of a line and a block tag are dropped.</summary>
    private static string LstripBlock(string text)
    {
        int k = text.Length;
        while (k > 0 && text[k - 1] is ' ' or '\t') k--;
        return k == 0 || text[k - 1] == '\n' ? text[..k] : text;
    }

    private static bool IsRawStart(string s, int p, out int body)
    {
        int q = SkipSpaces(s, p);
        body = 0;
        if (string.CompareOrdinal(s, q, "raw", 0, 3) != 0) return false;
        q = SkipSpaces(s, q + 3);
        if (q < s.Length && s[q] == '-') q++;
        if (string.CompareOrdinal(s, q, "%}", 0, 2) != 0) return false;
        body = q + 2;
        return true;
    }

    private static int FindEndRaw(string s, int from, out int after)
    {
        for (int i = s.IndexOf("{%", from, StringComparison.Ordinal); i >= 0; i = s.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            int q = SkipSpaces(s, i + 2 + (i + 2 < s.Length && s[i + 2] == '-' ? 1 : 0));
            if (string.CompareOrdinal(s, q, "endraw", 0, 6) != 0) continue;
            int close = s.IndexOf("%}", q, StringComparison.Ordinal);
            if (close < 0) break;
            after = close + 2;
            return i;
        }
        throw new JinjaException("{% raw %} without {% endraw %}", from);
    }

    private static int SkipSpaces(string s, int p)
    {
        while (p < s.Length && char.IsWhiteSpace(s[p])) p++;
        return p;
    }

    /// <summary>Tokenizes the inside of a tag up to its closer; returns the closer's position.</summary>
    private static int TokenizeExpression(string s, int p, string closer, List<JinjaToken> tokens, out bool minusAfter)
    {
        while (true)
        {
            p = SkipSpaces(s, p);
            if (p >= s.Length) throw new JinjaException($"tag not closed with '{closer}'", p);
            if (s[p] == '-' && string.CompareOrdinal(s, p + 1, closer, 0, 2) == 0) { minusAfter = true; return p + 1; }
            if (string.CompareOrdinal(s, p, closer, 0, 2) == 0) { minusAfter = false; return p; }
            char c = s[p];
            if (char.IsLetter(c) || c == '_')
            {
                int start = p;
                while (p < s.Length && (char.IsLetterOrDigit(s[p]) || s[p] == '_')) p++;
                tokens.Add(new(JinjaTokenKind.Name, s[start..p], null, start));
            }
            else if (char.IsDigit(c))
            {
                int start = p;
                while (p < s.Length && (char.IsDigit(s[p]) || s[p] == '_')) p++;
                bool isFloat = p + 1 < s.Length && s[p] == '.' && char.IsDigit(s[p + 1]);
                if (isFloat)
                {
                    p++;
                    while (p < s.Length && char.IsDigit(s[p])) p++;
                }
                string digits = s[start..p].Replace("_", "");
                tokens.Add(isFloat
                    ? new(JinjaTokenKind.Float, digits, double.Parse(digits, CultureInfo.InvariantCulture), start)
                    : new(JinjaTokenKind.Integer, digits, long.Parse(digits, CultureInfo.InvariantCulture), start));
            }
            else if (c is '\'' or '"')
            {
                int start = p;
                var sb = new StringBuilder();
                p++;
                while (true)
                {
                    if (p >= s.Length) throw new JinjaException("unterminated string", start);
                    char ch = s[p++];
                    if (ch == c) break;
                    if (ch != '\\' || p >= s.Length) { sb.Append(ch); continue; }
                    char e = s[p++];
                    sb.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => e });
                }
                tokens.Add(new(JinjaTokenKind.String, sb.ToString(), sb.ToString(), start));
            }
            else
            {
                string? op = null;
                foreach (var candidate in Operators)
                    if (string.CompareOrdinal(s, p, candidate, 0, candidate.Length) == 0) { op = candidate; break; }
                if (op is null) throw new JinjaException($"unexpected character '{c}'", p);
                tokens.Add(new(JinjaTokenKind.Operator, op, null, p));
                p += op.Length;
            }
        }
    }
}

/// <summary>A template that cannot be parsed or rendered; the message names the problem and its offset.</summary>
public sealed class JinjaException(string message, int position = -1)
    : AnyBitException(position >= 0 ? $"chat template: {message} (at offset {position})" : $"chat template: {message}");
