using System.Text;
using System.Text.RegularExpressions;

namespace AnyBit.Models;

/// <summary>
/// Shell-style file patterns as huggingface_hub's <c>allow_patterns</c> match repository paths (Python's fnmatch,
/// case-sensitive): <c>*</c> is any text, <c>/</c> included; <c>?</c> one character; <c>[abc]</c>, <c>[a-z]</c>,
/// <c>[!abc]</c> a set; a pattern ending in <c>/</c> means everything under that folder.
/// </summary>
public static class HubGlob
{
    /// <summary>True when <paramref name="path"/> matches one of <paramref name="patterns"/>, or none are given.</summary>
    public static bool MatchesAny(string path, IReadOnlyCollection<string> patterns) =>
        patterns.Count == 0 || patterns.Any(p => ToRegex(p).IsMatch(path));

    /// <summary>The pattern as an anchored regular expression (fnmatch.translate's rules).</summary>
    public static Regex ToRegex(string pattern)
    {
        if (pattern.EndsWith('/')) pattern += "*";
        var sb = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*') sb.Append(".*");
            else if (c == '?') sb.Append('.');
            else if (c == '[' && SetEnd(pattern, i) is int end and > 0)
            {
                string set = pattern[(i + 1)..end];
                bool negate = set.StartsWith('!');
                if (negate) set = set[1..];
                sb.Append(negate ? "[^" : "[");
                foreach (char s in set) sb.Append(s is '\\' or '[' or ']' or '^' ? "\\" + s : s.ToString());
                sb.Append(']');
                i = end;
            }
            else sb.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(sb.Append('$').ToString(), RegexOptions.Singleline | RegexOptions.CultureInvariant);
    }

    /// <summary>The index of the ']' closing the set opened at <paramref name="open"/>, or -1 (then '[' is literal).</summary>
    private static int SetEnd(string pattern, int open)
    {
        int j = open + 1;
        if (j < pattern.Length && pattern[j] == '!') j++;
        if (j < pattern.Length && pattern[j] == ']') j++; // a leading ']' belongs to the set
        int end = pattern.IndexOf(']', j);
        return end;
    }
}
