using System.Text.Json;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>Every case of every fixture's tokenizer_cases.json, compared with Hugging Face tokenizers' output.</summary>
public class TokenizerFixtureTests
{
    public sealed record Case(string Text, int[] Ids, int[] IdsWithSpecial, string Decoded);

    public static IEnumerable<object[]> Cases()
    {
        foreach (string model in new[] { "llama2-sp", "llama3-bpe", "qwen2-bpe", "qwen3-bpe", "mistral-sp", "bitnet-bpe" })
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Shared.Fixture("models", model, "tokenizer_cases.json")));
            int i = 0;
            foreach (var _ in doc.RootElement.EnumerateArray()) yield return [model, i++];
        }
    }

    private static Case Load(string model, int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Shared.Fixture("models", model, "tokenizer_cases.json")));
        var e = doc.RootElement[index];
        return new Case(e.GetProperty("text").GetString()!,
            e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            e.GetProperty("ids_with_special").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            e.GetProperty("decoded").GetString()!);
    }

    private static readonly Dictionary<string, ITokenizer> Cache = new();
    private static ITokenizer Tokenizer(string model)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(model, out var t))
            {
                using var files = ModelLoader.Open(Shared.Fixture("models", model));
                Cache[model] = t = files.Tokenizer!;
            }
            return t;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_without_special_tokens(string model, int index)
    {
        var c = Load(model, index);
        Assert.Equal(c.Ids, Tokenizer(model).Encode(c.Text, addSpecial: false));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_with_special_tokens(string model, int index)
    {
        var c = Load(model, index);
        Assert.Equal(c.IdsWithSpecial, Tokenizer(model).Encode(c.Text, addSpecial: true));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode(string model, int index)
    {
        var c = Load(model, index);
        Assert.Equal(c.Decoded, Tokenizer(model).Decode(c.Ids));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Streaming_decode_equals_full_decode(string model, int index)
    {
        var c = Load(model, index);
        var tok = Tokenizer(model);
        var stream = new StreamingDecoder(tok, skipSpecial: false);
        var pieces = new List<string>();
        foreach (int id in c.Ids) pieces.Add(stream.Append(id));
        pieces.Add(stream.Flush());
        Assert.Equal(c.Decoded, string.Concat(pieces));
        // No piece may carry a replacement character that the full text does not have.
        if (!c.Decoded.Contains('\uFFFD')) Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
    }
}

/// <summary>The two byte-level BPE engines (Microsoft.ML.Tokenizers and the built-in one) must agree everywhere.</summary>
public class ByteLevelEngineTests
{
    [Theory]
    [InlineData("gutenberg-llama", "sherlock.txt")]
    [InlineData("gutenberg-llama", "alice.txt")]
    public void Library_and_builtin_bpe_agree_on_a_whole_book(string model, string book)
    {
        string json = Shared.Data("models", model, "tokenizer.json");
        var library = TokenizerJson.Load(json);
        var builtin = TokenizerJson.Load(json, null, preferLibrary: false);
        Assert.NotNull(library.SegmentEncoder);
        Assert.Null(builtin.SegmentEncoder);
        string text = File.ReadAllText(Shared.Data("text", "eval", book));
        var a = library.Encode(text);
        var b = builtin.Encode(text);
        Assert.Equal(b.Length, a.Length);
        Assert.Equal(b, a);
        Assert.Equal(text, library.Decode(a));
    }

    [Fact]
    public void Library_encoder_is_used_only_where_it_is_exact()
    {
        // SentencePiece-style files keep the built-in engine (byte fallback, Metaspace).
        Assert.Null(TokenizerJson.Load(Shared.Fixture("models", "llama2-sp", "tokenizer.json")).SegmentEncoder);
        Assert.NotNull(TokenizerJson.Load(Shared.Fixture("models", "qwen2-bpe", "tokenizer.json")).SegmentEncoder);
    }
}

/// <summary>Other spellings of the same SentencePiece tokenizer that real tokenizer.json files use.</summary>
public class TokenizerVariantTests
{
    [Fact]
    public void Legacy_prepend_replace_normalizer_gives_the_same_ids_as_metaspace()
    {
        // Older Llama-2 tokenizer.json files: normalizer Prepend("▁") + Replace(" " → "▁"), no pre-tokenizer.
        string dir = Shared.TempDir();
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Shared.Fixture("models", "llama2-sp", "tokenizer.json")))!.AsObject();
        json["normalizer"] = System.Text.Json.Nodes.JsonNode.Parse("""
            {"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}
            """);
        json["pre_tokenizer"] = null;
        string path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        var legacy = TokenizerJson.Load(path);
        var modern = TokenizerJson.Load(Shared.Fixture("models", "llama2-sp", "tokenizer.json"));
        using var cases = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Shared.Fixture("models", "llama2-sp", "tokenizer_cases.json")));
        foreach (var c in cases.RootElement.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            if (text.Contains("<s>") || text.StartsWith(' ')) continue; // the legacy form differs there by design
            Assert.Equal(modern.Encode(text), legacy.Encode(text));
        }
    }
}
