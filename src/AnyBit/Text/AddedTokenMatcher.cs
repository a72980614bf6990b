namespace AnyBit.Text;

/// <summary>A token matched verbatim in the input before any other processing (tokenizers' "added tokens").</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip = false, bool RStrip = false);

/// <summary>
/// Splits text around added tokens, leftmost-longest as tokenizers does, so "&lt;|endoftext|&gt;" in a prompt becomes
/// its id instead of being spelled out.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Segments: (text, null) for ordinary text, (null, token) for a matched added token.</summary>
    public List<(string? Text, AddedToken? Token, int Offset)> Split(string text)
    {
        var result = new List<(string?, AddedToken?, int)>();
        int start = 0, i = 0;
        while (i < text.Length)
        {
            AddedToken? hit = null;
            if (_byFirstChar.TryGetValue(text[i], out var candidates))
                foreach (var c in candidates)
                    if (string.CompareOrdinal(text, i, c.Content, 0, c.Content.Length) == 0) { hit = c; break; }
            if (hit is null) { i++; continue; }
            int end = i + hit.Content.Length;
            int textEnd = i;
            if (hit.LStrip) while (textEnd > start && char.IsWhiteSpace(text[textEnd - 1])) textEnd--;
            if (hit.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (textEnd > start) result.Add((text[start..textEnd], null, start));
            result.Add((null, hit, i));
            start = i = end;
        }
        if (start < text.Length) result.Add((text[start..], null, start));
        return result;
    }
}
