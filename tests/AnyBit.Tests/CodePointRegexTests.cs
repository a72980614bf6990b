using System.Text.RegularExpressions;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>
/// Pre-tokenizer patterns on characters outside the BMP, where .NET's UTF-16 regex and the code-point regex engines
/// tokenizers uses (Rust regex, Oniguruma) disagree. Expected matches follow Unicode's categories of the characters.
/// </summary>
public class CodePointRegexTests
{
    private static string[] Matches(string pattern, string text) =>
        CodePointRegex.Create(pattern).Matches(text).Select(m => m.Value).ToArray();

    [Theory]
    [InlineData(@"\p{S}+", "a 😀🎉 b", new[] { "😀🎉" })]                        // So, astral
    [InlineData(@" ?[\p{P}\p{S}]+", "x 😀", new[] { " 😀" })]                     // DeepSeek V3: the space stays with the emoji
    [InlineData(@"\p{L}+", "a𝐀b 𠀀", new[] { "a𝐀b", "𠀀" })]                     // math letter (Lu), CJK extension B (Lo)
    [InlineData(@"[^\s\p{L}\p{N}]+", "a𝐀😀b", new[] { "😀" })]                   // a negated class takes whole pairs
    [InlineData(@"\p{N}{1,3}", "𝟙𝟚𝟛𝟜", new[] { "𝟙𝟚𝟛", "𝟜" })]                   // quantifiers count code points
    [InlineData(@"\P{L}+", "ab😀c", new[] { "😀" })]
    [InlineData(@"\d+", "1𝟚3", new[] { "1𝟚3" })]
    [InlineData(@"^.$", "😀", new[] { "😀" })]
    [InlineData(@"\S+", "😀 x", new[] { "😀", "x" })]
    [InlineData(@"\x{1F600}", "a😀", new[] { "😀" })]
    [InlineData(@"[😀-😂]+", "😀😁😂😃", new[] { "😀😁😂" })]
    [InlineData(@"[\u4e00-\u9fa5]+", "中文𠀀", new[] { "中文" })]
    public void Unicode_classes_match_code_points(string pattern, string text, string[] expected) =>
        Assert.Equal(expected, Matches(pattern, text));

    [Fact]
    public void Patterns_without_unicode_classes_are_unchanged_in_meaning()
    {
        const string gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
        string text = "Hello, world! It's 2024.\n\n  Tabs\tand  spaces ";
        Assert.Equal(new Regex(gpt2).Matches(text).Select(m => m.Value), Matches(gpt2, text));
    }
}
