using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace AnyBit.Text;

/// <summary>
/// Loads a Hugging Face <c>tokenizer.json</c> with a BPE model: byte-level BPE (GPT-2, Llama-3, Qwen) and
/// SentencePiece-style BPE with byte fallback (Llama-2, Mistral).
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers does the BPE work where it reproduces Hugging Face tokenizers exactly: byte-level BPE
/// (GPT-2, Llama-3, Qwen style) built from the file's vocabulary, merges and pre-tokenizer regex gives identical ids
/// on every fixture case and on the whole Sherlock text. The library has no tokenizer.json loader, so the pipeline
/// around it (added tokens, normalizer, post-processor, decoder) is read here. The rest is implemented by hand,
/// because the library gets it wrong:
/// <list type="bullet">
/// <item>SentencePiece-style BPE (Llama-2, Mistral): its BpeTokenizer has no byte fallback and no Metaspace
/// prepend scheme, and its LlamaTokenizer (which needs tokenizer.model, often absent) differs from tokenizer.json on
/// 3 of 14 fixture cases: it prepends ▁ to text that already starts with a space, merges runs of spaces
/// differently, and does not recognise "&lt;s&gt;"/"&lt;/s&gt;" written in the text;</item>
/// <item><c>ignore_merges: true</c> (whole pre-tokens found in the vocabulary bypass the merges), which it lacks.</item>
/// </list>
/// </remarks>
public static class TokenizerJson
{
    public static BpeTokenizer Load(string path, string? tokenizerConfigPath = null) => Load(path, tokenizerConfigPath, preferLibrary: true);

    /// <param name="path">tokenizer.json</param>
    /// <param name="tokenizerConfigPath">tokenizer_config.json beside it (BOS/EOS names), if any</param>
    /// <param name="preferLibrary">false forces the built-in BPE everywhere (tests compare the two)</param>
    internal static BpeTokenizer Load(string path, string? tokenizerConfigPath, bool preferLibrary)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"not valid JSON ({e.Message})");
        }
        using (doc)
        {
            try
            {
                return Build(doc.RootElement, path, tokenizerConfigPath, preferLibrary);
            }
            catch (Exception e) when (e is not AnyBitException and not OutOfMemoryException)
            {
                throw new InvalidModelFileException(path, $"malformed tokenizer ({e.Message})");
            }
        }
    }

    private static BpeTokenizer Build(JsonElement root, string path, string? configPath, bool preferLibrary)
    {
        InvalidModelFileException Bad(string p) => new(path, p);
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object) throw Bad("no 'model' object");
        string modelType = model.TryGetProperty("type", out var mt) ? mt.GetString() ?? "" : "BPE";
        if (modelType != "BPE") throw Bad($"tokenizer model type '{modelType}' is not supported (BPE)");

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in model.GetProperty("vocab").EnumerateObject())
        {
            int id = p.Value.GetInt32();
            if (id < 0 || id > 1 << 24) throw Bad($"token id {id} is out of range");
            vocab[p.Name] = id;
        }
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesEl))
            foreach (var m in mergesEl.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String)
                {
                    // Older files store "left right"; the separator is the first space (pieces never contain one).
                    string s = m.GetString()!;
                    int sp = s.IndexOf(' ', 1);
                    if (sp < 0) throw Bad($"merge '{s}' has no separator");
                    merges.Add((s[..sp], s[(sp + 1)..]));
                }
                else merges.Add((m[0].GetString()!, m[1].GetString()!));
            }

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedEl) && addedEl.ValueKind == JsonValueKind.Array)
            foreach (var a in addedEl.EnumerateArray())
                added.Add(new AddedToken(a.GetProperty("id").GetInt32(), a.GetProperty("content").GetString()!,
                    Flag(a, "special"), Flag(a, "lstrip"), Flag(a, "rstrip")));

        var normalizers = new List<NormalizerStep>();
        if (root.TryGetProperty("normalizer", out var norm)) AddNormalizers(norm, normalizers, Bad);
        var preTokenizers = new List<PreTokenizerStep>();
        if (root.TryGetProperty("pre_tokenizer", out var pre)) AddPreTokenizers(pre, preTokenizers, Bad);

        // Decoder: work out how each token turns into bytes, and how many leading spaces the decoder strips.
        bool byteLevel = false, byteFallbackDecode = false;
        int strip = 0;
        var replaces = new List<(string From, string To)>();
        if (root.TryGetProperty("decoder", out var dec)) ReadDecoder(dec, ref byteLevel, ref byteFallbackDecode, ref strip, replaces, Bad);
        Func<string, byte[]> toBytes = piece =>
        {
            if (byteLevel)
            {
                var bytes = new List<byte>(piece.Length);
                foreach (char c in piece)
                    if (ByteLevelAlphabet.TryCharToByte(c, out byte b)) bytes.Add(b);
                    else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
                return bytes.ToArray();
            }
            if (byteFallbackDecode && Utf8Chars.IsByteToken(piece, out byte value)) return [value];
            foreach (var (from, to) in replaces) piece = piece.Replace(from, to);
            return Encoding.UTF8.GetBytes(piece);
        };

        var (prefix, suffix) = root.TryGetProperty("post_processor", out var post)
            ? ReadPostProcessor(post, vocab, added, Bad) : ([], []);

        int? unk = null;
        if (model.TryGetProperty("unk_token", out var unkEl) && unkEl.ValueKind == JsonValueKind.String && vocab.TryGetValue(unkEl.GetString()!, out int unkId))
            unk = unkId;

        // BOS/EOS: tokenizer_config.json names them; fall back to the post-processor's first prefix id.
        int? bos = prefix.Length > 0 ? prefix[0] : null, eos = null;
        bool cleanUp = false;
        if (configPath is not null && File.Exists(configPath))
        {
            try
            {
                using var cfg = JsonDocument.Parse(File.ReadAllBytes(configPath));
                bos = LookupSpecial(cfg.RootElement, "bos_token", vocab, added) ?? bos;
                eos = LookupSpecial(cfg.RootElement, "eos_token", vocab, added);
                // Only when set: transformers' default is false (transformers.js still defaults to true).
                cleanUp = Flag(cfg.RootElement, "clean_up_tokenization_spaces");
            }
            catch (JsonException e)
            {
                throw new InvalidModelFileException(configPath, $"not valid JSON ({e.Message})");
            }
        }

        bool isSentencePiece = preTokenizers.Any(p => p is MetaspacePreTokenizer) || normalizers.Any(n => n is PrependNormalizer);
        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        var segmentEncoder = preferLibrary && byteLevel && !byteFallback && !ignoreMerges ? LibraryByteLevelEncoder(preTokenizers, vocab, merges) : null;
        return new BpeTokenizer(vocab, merges, added, toBytes)
        {
            Kind = isSentencePiece ? "tokenizer.json SentencePiece-style BPE" : byteLevel ? "tokenizer.json byte-level BPE" : "tokenizer.json BPE",
            SentencePieceStyle = isSentencePiece,
            PreTokenizerName = GgufPreName(preTokenizers),
            Normalizers = normalizers,
            PreTokenizers = preTokenizers,
            PrefixIds = prefix,
            SuffixIds = suffix,
            ByteFallback = byteFallback,
            IgnoreMerges = ignoreMerges,
            SegmentEncoder = segmentEncoder,
            FuseUnk = model.TryGetProperty("fuse_unk", out var fu) && fu.ValueKind == JsonValueKind.True,
            UnkId = unk,
            BosId = bos,
            EosId = eos,
            LeadingSpacesToStrip = strip,
            CleanUpTokenizationSpaces = cleanUp,
        };
    }

    /// <summary>
    /// A Microsoft.ML.Tokenizers byte-level BPE equivalent to the file's pre-tokenizer, or null when the pipeline is
    /// one the library cannot express (then the built-in implementation runs). Expressible: ByteLevel with GPT-2's
    /// regex and no prefix space, or a single Isolated regex Split followed by ByteLevel without a regex.
    /// </summary>
    private static Microsoft.ML.Tokenizers.Tokenizer? LibraryByteLevelEncoder(List<PreTokenizerStep> steps, Dictionary<string, int> vocab, List<(string, string)> merges)
    {
        Regex? pattern = steps switch
        {
            [ByteLevelPreTokenizer { AddPrefixSpace: false, UseRegex: true }] => CodePointRegex.Create(ByteLevelPreTokenizer.Gpt2Pattern, RegexOptions.Compiled),
            [SplitPreTokenizer { Behavior: "Isolated" } split, ByteLevelPreTokenizer { AddPrefixSpace: false, UseRegex: false }] => split.Pattern,
            _ => null,
        };
        if (pattern is null) return null;
        // Merges whose parts contain a space cannot be written in the library's "left right" form.
        if (merges.Any(m => m.Item1.Contains(' ') || m.Item2.Contains(' '))) return null;
        return Microsoft.ML.Tokenizers.BpeTokenizer.Create(new Microsoft.ML.Tokenizers.BpeOptions(vocab)
        {
            Merges = merges.Select(m => m.Item1 + " " + m.Item2),
            ByteLevel = true,
            PreTokenizer = new Microsoft.ML.Tokenizers.RegexPreTokenizer(pattern, null),
        });
    }

    /// <summary>llama.cpp's tokenizer.ggml.pre for the pre-tokenizer regexes it recognises.</summary>
    private static string GgufPreName(List<PreTokenizerStep> steps)
    {
        string? pattern = steps switch
        {
            [ByteLevelPreTokenizer { UseRegex: true }] => ByteLevelPreTokenizer.Gpt2Pattern,
            [SplitPreTokenizer split, ByteLevelPreTokenizer { UseRegex: false }] => split.Source,
            _ => null,
        };
        return pattern switch
        {
            ByteLevelPreTokenizer.Gpt2Pattern => "gpt-2",
            GgufTokenizer.Llama3Pattern => "llama-bpe",
            GgufTokenizer.Qwen2Pattern => "qwen2",
            GgufTokenizer.O200kPattern => "gpt-4o",
            _ => "default",
        };
    }

    private static bool Flag(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.True;

    private static int? LookupSpecial(JsonElement cfg, string key, Dictionary<string, int> vocab, List<AddedToken> added)
    {
        if (!cfg.TryGetProperty(key, out var v)) return null;
        string? content = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) => c.GetString(),
            _ => null,
        };
        if (content is null) return null;
        var a = added.FirstOrDefault(t => t.Content == content);
        if (a is not null) return a.Id;
        return vocab.TryGetValue(content, out int id) ? id : null;
    }

    /// <summary>A Split or Replace pattern: its text as written, and the .NET regex that matches as tokenizers does.</summary>
    private static (string Source, Regex Regex) PatternOf(JsonElement pattern)
    {
        if (pattern.TryGetProperty("Regex", out var r))
        {
            // Written for Oniguruma, which matches code points; CodePointRegex makes .NET's UTF-16 regex do the same.
            string source = r.GetString()!;
            try
            {
                return (source, CodePointRegex.Create(source, RegexOptions.Compiled));
            }
            catch (ArgumentException e)
            {
                // .NET's message quotes the rewritten pattern; name the file's instead.
                throw new FormatException($"pattern '{source}' is not supported: {e.Message.Split(". ").Last().TrimEnd('.')}");
            }
        }
        if (pattern.TryGetProperty("String", out var s)) return (s.GetString()!, new Regex(Regex.Escape(s.GetString()!), RegexOptions.CultureInvariant));
        throw new FormatException("pattern is neither Regex nor String");
    }

    private static void AddNormalizers(JsonElement n, List<NormalizerStep> steps, Func<string, InvalidModelFileException> bad)
    {
        if (n.ValueKind == JsonValueKind.Null) return;
        string type = n.GetProperty("type").GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var c in n.GetProperty("normalizers").EnumerateArray()) AddNormalizers(c, steps, bad);
                break;
            case "NFC": steps.Add(new UnicodeNormalizer(NormalizationForm.FormC)); break;
            case "NFD": steps.Add(new UnicodeNormalizer(NormalizationForm.FormD)); break;
            case "NFKC": steps.Add(new UnicodeNormalizer(NormalizationForm.FormKC)); break;
            case "NFKD": steps.Add(new UnicodeNormalizer(NormalizationForm.FormKD)); break;
            case "Lowercase": steps.Add(new LowercaseNormalizer()); break;
            case "Prepend": steps.Add(new PrependNormalizer(n.GetProperty("prepend").GetString()!)); break;
            case "Replace": steps.Add(new ReplaceNormalizer(PatternOf(n.GetProperty("pattern")).Regex, n.GetProperty("content").GetString()!)); break;
            default: throw bad($"normalizer '{type}' is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)");
        }
    }

    private static void AddPreTokenizers(JsonElement p, List<PreTokenizerStep> steps, Func<string, InvalidModelFileException> bad)
    {
        if (p.ValueKind == JsonValueKind.Null) return;
        string type = p.GetProperty("type").GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var c in p.GetProperty("pretokenizers").EnumerateArray()) AddPreTokenizers(c, steps, bad);
                break;
            case "ByteLevel":
                steps.Add(new ByteLevelPreTokenizer(Flag(p, "add_prefix_space"), !p.TryGetProperty("use_regex", out var ur) || ur.ValueKind == JsonValueKind.True));
                break;
            case "Split":
                if (Flag(p, "invert")) throw bad("Split pre-tokenizer with invert: true is not supported");
                var (source, regex) = PatternOf(p.GetProperty("pattern"));
                steps.Add(new SplitPreTokenizer(source, regex, p.GetProperty("behavior").GetString()!));
                break;
            case "Metaspace":
                string replacement = p.TryGetProperty("replacement", out var rep) ? rep.GetString()! : "▁";
                string scheme = p.TryGetProperty("prepend_scheme", out var ps) && ps.ValueKind == JsonValueKind.String ? ps.GetString()!
                    : (p.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.False ? "never" : "always");
                steps.Add(new MetaspacePreTokenizer(replacement[0], scheme, !p.TryGetProperty("split", out var sp) || sp.ValueKind == JsonValueKind.True));
                break;
            case "Digits": steps.Add(new DigitsPreTokenizer(Flag(p, "individual_digits"))); break;
            case "Whitespace": steps.Add(new WhitespacePreTokenizer()); break;
            default: throw bad($"pre-tokenizer '{type}' is not supported (ByteLevel, Split, Metaspace, Digits, Whitespace, Sequence)");
        }
    }

    private static void ReadDecoder(JsonElement d, ref bool byteLevel, ref bool byteFallback, ref int strip,
        List<(string, string)> replaces, Func<string, InvalidModelFileException> bad)
    {
        if (d.ValueKind == JsonValueKind.Null) return;
        string type = d.GetProperty("type").GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var c in d.GetProperty("decoders").EnumerateArray()) ReadDecoder(c, ref byteLevel, ref byteFallback, ref strip, replaces, bad);
                break;
            case "ByteLevel": byteLevel = true; break;
            case "ByteFallback": byteFallback = true; break;
            case "Fuse": break;
            case "Replace":
                var pat = d.GetProperty("pattern");
                if (!pat.TryGetProperty("String", out var from)) throw bad("Replace decoder with a regex pattern is not supported");
                replaces.Add((from.GetString()!, d.GetProperty("content").GetString()!));
                break;
            case "Strip":
                if (d.GetProperty("content").GetString() != " " || d.GetProperty("stop").GetInt32() != 0)
                    throw bad("Strip decoder other than leading spaces is not supported");
                strip = d.GetProperty("start").GetInt32();
                break;
            case "Metaspace":
                string replacement = d.TryGetProperty("replacement", out var rep) ? rep.GetString()! : "▁";
                replaces.Add((replacement, " "));
                string scheme = d.TryGetProperty("prepend_scheme", out var ps) && ps.ValueKind == JsonValueKind.String ? ps.GetString()! : "always";
                if (scheme != "never") strip = 1;
                break;
            default: throw bad($"decoder '{type}' is not supported (ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)");
        }
    }

    private static (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement p, Dictionary<string, int> vocab,
        List<AddedToken> added, Func<string, InvalidModelFileException> bad)
    {
        if (p.ValueKind == JsonValueKind.Null) return ([], []);
        string type = p.GetProperty("type").GetString()!;
        int IdOf(string token) => added.FirstOrDefault(a => a.Content == token)?.Id
            ?? (vocab.TryGetValue(token, out int id) ? id : throw bad($"post-processor token '{token}' is not in the vocabulary"));
        switch (type)
        {
            case "ByteLevel": return ([], []);
            case "Sequence":
            {
                var prefix = new List<int>();
                var suffix = new List<int>();
                foreach (var c in p.GetProperty("processors").EnumerateArray())
                {
                    var (pr, su) = ReadPostProcessor(c, vocab, added, bad);
                    prefix.AddRange(pr);
                    suffix.AddRange(su);
                }
                return (prefix.ToArray(), suffix.ToArray());
            }
            case "TemplateProcessing":
            {
                var prefix = new List<int>();
                var suffix = new List<int>();
                bool seenSequence = false;
                var specials = p.GetProperty("special_tokens");
                foreach (var item in p.GetProperty("single").EnumerateArray())
                {
                    if (item.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
                    string id = item.GetProperty("SpecialToken").GetProperty("id").GetString()!;
                    var ids = specials.TryGetProperty(id, out var st)
                        ? st.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()
                        : [IdOf(id)];
                    (seenSequence ? suffix : prefix).AddRange(ids);
                }
                return (prefix.ToArray(), suffix.ToArray());
            }
            case "RobertaProcessing":
            case "BertProcessing":
                return ([p.GetProperty("cls")[1].GetInt32()], [p.GetProperty("sep")[1].GetInt32()]);
            default: throw bad($"post-processor '{type}' is not supported (TemplateProcessing, ByteLevel, Roberta, Bert, Sequence)");
        }
    }
}
