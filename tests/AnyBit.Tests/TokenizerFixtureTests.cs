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
