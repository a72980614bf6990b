using System.Text;

namespace AnyBit.Text;

/// <summary>
/// A rank-based BPE tokenizer with a tokenizers-style pipeline: added tokens → normalizer → pre-tokenizer → BPE
/// (with optional byte fallback) → post-processor. Built from tokenizer.json (<see cref="TokenizerJson"/>) or from
/// a GGUF "gpt2" vocabulary.
/// </summary>
public sealed class BpeTokenizer : ITokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _pieces;
    private readonly byte[][] _tokenBytes;
    private readonly HashSet<int> _special;
    private readonly AddedTokenMatcher _added;
    private readonly BpeMerger _merger;
    private readonly Dictionary<string, int[]> _cache = new();
    private readonly Lock _cacheLock = new();

    internal IReadOnlyList<NormalizerStep> Normalizers { get; init; } = [];
    internal IReadOnlyList<PreTokenizerStep> PreTokenizers { get; init; } = [];

    /// <summary>Ids the post-processor puts before / after the sequence when special tokens are added.</summary>
    public int[] PrefixIds { get; init; } = [];
    public int[] SuffixIds { get; init; } = [];
    public bool ByteFallback { get; init; }
    public bool IgnoreMerges { get; init; }
    public int? UnkId { get; init; }
    public bool FuseUnk { get; init; }
    public required string Kind { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int LeadingSpacesToStrip { get; init; }
    public bool CleanUpTokenizationSpaces { get; init; }

    /// <summary>
    /// When set, ordinary text segments (between added tokens, after normalization) are encoded by this
    /// Microsoft.ML.Tokenizers BPE model instead of the built-in pre-tokenizer and merger. TokenizerJson sets it for
    /// the byte-level pipelines that library reproduces exactly.
    /// </summary>
    internal Microsoft.ML.Tokenizers.Tokenizer? SegmentEncoder { get; init; }

    /// <summary>The merges in rank order (for writing the vocabulary into GGUF).</summary>
    public IReadOnlyList<(string Left, string Right)> Merges { get; }

    /// <summary>Tokens matched verbatim in text (special and user-defined).</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>llama.cpp's name for this pre-tokenizer (tokenizer.ggml.pre), when known.</summary>
    public string PreTokenizerName { get; init; } = "default";

    /// <summary>True for SentencePiece-style vocabularies (▁ for spaces, byte fallback).</summary>
    public bool SentencePieceStyle { get; init; }

    internal BpeTokenizer(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<AddedToken> added, Func<string, byte[]> tokenToBytes)
    {
        _vocab = vocab;
        Merges = merges;
        AddedTokens = added;
        int size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);
        _pieces = new string[size];
        foreach (var (piece, id) in vocab) _pieces[id] = piece;
        foreach (var a in added) _pieces[a.Id] = a.Content;
        for (int i = 0; i < size; i++) _pieces[i] ??= "";
        _tokenBytes = new byte[size][];
        var addedById = added.ToDictionary(a => a.Id);
        for (int i = 0; i < size; i++)
            _tokenBytes[i] = addedById.TryGetValue(i, out var a) && !vocab.ContainsKey(a.Content) ? Encoding.UTF8.GetBytes(a.Content) : tokenToBytes(_pieces[i]);
        _special = added.Where(a => a.Special).Select(a => a.Id).ToHashSet();
        _added = new AddedTokenMatcher(added);

        var table = new Dictionary<(int, int), (int Rank, int Merged)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r) = merges[rank];
            if (vocab.TryGetValue(l, out int li) && vocab.TryGetValue(r, out int ri) && vocab.TryGetValue(l + r, out int mi))
                table.TryAdd((li, ri), (rank, mi));
        }
        _merger = BpeMerger.FromTable(table);
    }

    public int VocabSize => _pieces.Length;
    public string Piece(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{_pieces.Length - 1})");
    public bool IsSpecial(int id) => _special.Contains(id);
    public ReadOnlySpan<byte> TokenBytes(int id) => (uint)id < (uint)_tokenBytes.Length ? _tokenBytes[id] : throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{_tokenBytes.Length - 1})");

    public int[] Encode(string text, bool addSpecial = true)
    {
        var ids = new List<int>();
        if (addSpecial) ids.AddRange(PrefixIds);
        foreach (var (segment, token, offset) in _added.Split(text))
        {
            if (token is not null) { ids.Add(token.Id); continue; }
            string normalized = segment!;
            foreach (var n in Normalizers) normalized = n.Apply(normalized);
            if (SegmentEncoder is not null)
            {
                ids.AddRange(SegmentEncoder.EncodeToIds(normalized, considerPreTokenization: true, considerNormalization: false));
                continue;
            }
            var pieces = new List<TextPiece> { new(normalized, offset == 0) };
            foreach (var p in PreTokenizers) p.Apply(pieces);
            foreach (var piece in pieces) EncodeWord(piece.Text, ids);
        }
        if (addSpecial) ids.AddRange(SuffixIds);
        return ids.ToArray();
    }

    private void EncodeWord(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (IgnoreMerges && _vocab.TryGetValue(word, out int whole)) { output.Add(whole); return; }
        bool cacheable = word.Length < 64;
        if (cacheable)
            lock (_cacheLock)
                if (_cache.TryGetValue(word, out var cached)) { output.AddRange(cached); return; }

        var symbols = new List<int>(word.Length);
        bool lastWasUnk = false;
        foreach (string ch in Utf8Chars.Scalars(word))
        {
            if (_vocab.TryGetValue(ch, out int id)) { symbols.Add(id); lastWasUnk = false; continue; }
            if (ByteFallback)
            {
                var bytes = Encoding.UTF8.GetBytes(ch);
                var byteIds = new List<int>();
                foreach (byte b in bytes)
                    if (_vocab.TryGetValue($"<0x{b:X2}>", out int bid)) byteIds.Add(bid);
                if (byteIds.Count == bytes.Length) { symbols.AddRange(byteIds); lastWasUnk = false; continue; }
            }
            if (UnkId is int unk)
            {
                if (!(FuseUnk && lastWasUnk)) symbols.Add(unk);
                lastWasUnk = true;
            }
        }
        _merger.Apply(symbols);
        if (cacheable)
            lock (_cacheLock)
                if (_cache.Count < 200_000) _cache[word] = symbols.ToArray();
        output.AddRange(symbols);
    }
}
