using System.Text;
using System.Text.RegularExpressions;
using AnyBit.IO;

namespace AnyBit.Text;

/// <summary>Builds the tokenizer embedded in a GGUF file (<c>tokenizer.ggml.*</c> metadata).</summary>
public static class GgufTokenizer
{
    /// <summary>llama.cpp's token types (<c>tokenizer.ggml.token_type</c>).</summary>
    private const int TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4;

    internal const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// <summary>o200k's split (gpt-oss, GPT-4o; GGUF pre-tokenizer "gpt-4o"), as its tokenizer.json writes it.</summary>
    internal const string O200kPattern = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    internal const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The tokenizer, or null when the file carries no vocabulary.</summary>
    public static ITokenizer? TryLoad(GgufFile gguf) => TryLoad(gguf.TypedMetadata);

    /// <summary>The tokenizer of GGUF metadata (of a file or about to be written), or null when it carries no vocabulary.</summary>
    public static ITokenizer? TryLoad(GgufMetadata gguf)
    {
        string? model = gguf.GetString("tokenizer.ggml.model");
        if (model is null) return null;
        InvalidModelFileException Bad(string p) => new(gguf.Source, p);
        var tokensArr = gguf.GetArray("tokenizer.ggml.tokens") ?? throw Bad("tokenizer.ggml.tokens is missing");
        if (tokensArr.Values is not string[] tokens) throw Bad("tokenizer.ggml.tokens is not an array of strings");
        int[] types = ToInts(gguf.GetArray("tokenizer.ggml.token_type"), tokens.Length, 1, Bad, "tokenizer.ggml.token_type");
        int? Id(string key)
        {
            long? v = gguf.GetInteger(key);
            if (v is null) return null;
            if (v < 0 || v >= tokens.Length) throw Bad($"{key} = {v} is outside the vocabulary of {tokens.Length}");
            return (int)v;
        }
        int? bos = Id("tokenizer.ggml.bos_token_id"), eos = Id("tokenizer.ggml.eos_token_id"), unk = Id("tokenizer.ggml.unknown_token_id");

        switch (model)
        {
            case "llama":
            {
                float[] scores = gguf.GetArray("tokenizer.ggml.scores")?.Values as float[] ?? new float[tokens.Length];
                if (scores.Length != tokens.Length) throw Bad($"tokenizer.ggml.scores has {scores.Length} entries for {tokens.Length} tokens");
                var control = types.Select(t => t == TypeControl).ToArray();
                return new ScoredSentencePieceTokenizer("GGUF llama (SentencePiece BPE)", tokens, scores, control, "▁",
                    gguf.GetBool("tokenizer.ggml.add_space_prefix") ?? true, bos, eos,
                    gguf.GetBool("tokenizer.ggml.add_bos_token") ?? true, gguf.GetBool("tokenizer.ggml.add_eos_token") ?? false, unk);
            }
            case "gpt2":
            {
                var mergesArr = gguf.GetArray("tokenizer.ggml.merges");
                var merges = new List<(string, string)>();
                if (mergesArr?.Values is string[] mergeStrings)
                    foreach (string m in mergeStrings)
                    {
                        int sp = m.IndexOf(' ', 1);
                        if (sp < 0) throw Bad($"merge '{m}' has no separator");
                        merges.Add((m[..sp], m[(sp + 1)..]));
                    }
                var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
                for (int i = 0; i < tokens.Length; i++) vocab.TryAdd(tokens[i], i);
                var added = Enumerable.Range(0, tokens.Length).Where(i => types[i] is TypeControl or TypeUserDefined)
                    .Select(i => new AddedToken(i, tokens[i], types[i] == TypeControl)).ToList();
                string pre = gguf.GetString("tokenizer.ggml.pre") ?? "default";
                string pattern = pre switch
                {
                    "llama3" or "llama-bpe" or "llama-v3" or "smaug-bpe" => Llama3Pattern,
                    "gpt-2" or "gpt2" or "default" => ByteLevelPreTokenizer.Gpt2Pattern,
                    "qwen2" => Qwen2Pattern,
                    "gpt-4o" => O200kPattern,
                    _ => ByteLevelPreTokenizer.Gpt2Pattern,
                };
                bool addBos = gguf.GetBool("tokenizer.ggml.add_bos_token") ?? false;
                return new BpeTokenizer(vocab, merges, added, ByteLevelBytes)
                {
                    Kind = $"GGUF gpt2 (byte-level BPE, pre-tokenizer '{pre}')",
                    PreTokenizerName = pre,
                    Normalizers = [],
                    PreTokenizers = [new SplitPreTokenizer(pattern, CodePointRegex.Create(pattern, RegexOptions.Compiled), "Isolated"), new ByteLevelPreTokenizer(false, false)],
                    PrefixIds = addBos && bos is int b ? [b] : [],
                    SuffixIds = (gguf.GetBool("tokenizer.ggml.add_eos_token") ?? false) && eos is int e ? [e] : [],
                    IgnoreMerges = pre is "llama3" or "llama-bpe" or "llama-v3",
                    BosId = bos,
                    EosId = eos,
                };
            }
            default:
                throw Bad($"tokenizer model '{model}' is not supported (llama, gpt2)");
        }
    }

    internal static byte[] ByteLevelBytes(string piece)
    {
        var bytes = new List<byte>(piece.Length);
        foreach (char c in piece)
            if (ByteLevelAlphabet.TryCharToByte(c, out byte b)) bytes.Add(b);
            else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
        return bytes.ToArray();
    }

    private static int[] ToInts(GgufArray? arr, int n, int fallback, Func<string, InvalidModelFileException> bad, string key)
    {
        if (arr is null) return Enumerable.Repeat(fallback, n).ToArray();
        if (arr.Count != n) throw bad($"{key} has {arr.Count} entries for {n} tokens");
        var result = new int[n];
        for (int i = 0; i < n; i++)
        {
            object? v = arr.Values.GetValue(i);
            long x = v switch { int a => a, uint a => a, long a => a, ulong a => (long)Math.Min(a, long.MaxValue), short a => a, ushort a => a, sbyte a => a, byte a => a, _ => throw bad($"{key} is not an integer array") };
            result[i] = (int)Math.Clamp(x, int.MinValue, int.MaxValue);
        }
        return result;
    }
}
