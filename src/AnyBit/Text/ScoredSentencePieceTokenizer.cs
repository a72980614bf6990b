using System.Text;

namespace AnyBit.Text;

/// <summary>
/// SentencePiece BPE driven by piece scores, as llama.cpp's "llama" vocabulary and llama2.c's tokenizer.bin do it:
/// text → (spaces as the space symbol, plus a dummy prefix) → one symbol per UTF-8 character → repeatedly merge the
/// adjacent pair whose concatenation is a vocabulary piece with the highest score (leftmost on ties) → characters
/// still not in the vocabulary become byte tokens &lt;0xXX&gt;.
/// </summary>
public sealed class ScoredSentencePieceTokenizer : ITokenizer
{
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly bool[] _control;
    private readonly byte[][] _bytes;
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);
    private readonly int[] _byteTokens = new int[256];
    private readonly string _space;
    private readonly AddedTokenMatcher _specials;
    private readonly BpeMerger _merger;

    /// <param name="kind">description for inspect</param>
    /// <param name="pieces">vocabulary pieces by id</param>
    /// <param name="scores">merge score per piece (higher merges first)</param>
    /// <param name="control">true for control tokens (BOS, EOS, ...), which decode to nothing</param>
    /// <param name="spaceSymbol">"▁" for SentencePiece vocabularies, " " for llama2.c's exported tokenizer.bin</param>
    /// <param name="addSpacePrefix">prepend a space to non-empty text, as SentencePiece's dummy prefix</param>
    /// <param name="bos">beginning-of-sequence id</param>
    /// <param name="eos">end-of-sequence id</param>
    /// <param name="addBos">whether encoding with special tokens starts with BOS</param>
    /// <param name="addEos">whether encoding with special tokens ends with EOS</param>
    /// <param name="unk">id for bytes that have no byte token</param>
    public ScoredSentencePieceTokenizer(string kind, string[] pieces, float[] scores, bool[] control, string spaceSymbol,
        bool addSpacePrefix, int? bos, int? eos, bool addBos, bool addEos, int? unk)
    {
        Kind = kind; _pieces = pieces; _scores = scores; _control = control; _space = spaceSymbol;
        AddSpacePrefix = addSpacePrefix; BosId = bos; EosId = eos; AddBos = addBos; AddEos = addEos; UnkId = unk;
        for (int i = 0; i < pieces.Length; i++) _index.TryAdd(pieces[i], i);
        Array.Fill(_byteTokens, -1);
        _bytes = new byte[pieces.Length][];
        for (int i = 0; i < pieces.Length; i++)
        {
            if (Utf8Chars.IsByteToken(pieces[i], out byte b))
            {
                if (_byteTokens[b] < 0) _byteTokens[b] = i;
                _bytes[i] = [b];
            }
            else _bytes[i] = control[i] ? [] : Encoding.UTF8.GetBytes(pieces[i].Replace(spaceSymbol, " "));
        }
        _specials = new AddedTokenMatcher(Enumerable.Range(0, pieces.Length).Where(i => control[i] && pieces[i].Length > 1)
            .Select(i => new AddedToken(i, pieces[i], true)));
        _merger = new BpeMerger((int l, int r, out float rank, out int merged) =>
        {
            if (_index.TryGetValue(_pieces[l] + _pieces[r], out merged)) { rank = -_scores[merged]; return true; }
            rank = 0; merged = -1; return false;
        });
    }

    public string Kind { get; }
    /// <summary>Vocabulary pieces by id, as stored.</summary>
    public IReadOnlyList<string> Pieces => _pieces;
    /// <summary>Merge scores by id.</summary>
    public IReadOnlyList<float> Scores => _scores;
    /// <summary>The space symbol pieces use: "▁", or " " in llama2.c's tokenizer.bin.</summary>
    public string SpaceSymbol => _space;
    public bool AddSpacePrefix { get; }
    public bool AddBos { get; }
    public bool AddEos { get; }
    public int? UnkId { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    public int VocabSize => _pieces.Length;
    /// <summary>SentencePiece's decoder drops the dummy-prefix space at the start of the text.</summary>
    public int LeadingSpacesToStrip => AddSpacePrefix ? 1 : 0;
    public string Piece(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{_pieces.Length - 1})");
    public bool IsSpecial(int id) => (uint)id < (uint)_control.Length && _control[id];
    public ReadOnlySpan<byte> TokenBytes(int id) => (uint)id < (uint)_bytes.Length ? _bytes[id] : throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{_bytes.Length - 1})");

    public int[] Encode(string text, bool addSpecial = true)
    {
        var ids = new List<int>();
        if (addSpecial && AddBos && BosId is int bos) ids.Add(bos);
        bool first = true;
        foreach (var (segment, token, _) in _specials.Split(text))
        {
            if (token is not null) { ids.Add(token.Id); first = false; continue; }
            EncodeSegment(segment!, first, ids);
            first = false;
        }
        if (addSpecial && AddEos && EosId is int eos) ids.Add(eos);
        return ids.ToArray();
    }

    private void EncodeSegment(string text, bool atStart, List<int> output)
    {
        if (text.Length == 0) return;
        string s = text.Replace(" ", _space);
        if (AddSpacePrefix && atStart) s = _space + s;
        var symbols = new List<int>();
        var unknown = new Dictionary<int, string>(); // symbol position → character not in the vocabulary
        foreach (string ch in Utf8Chars.Scalars(s))
        {
            if (_index.TryGetValue(ch, out int id)) symbols.Add(id);
            else
            {
                // Placeholder: a character outside the vocabulary takes no part in merges; resolved to bytes below.
                unknown[symbols.Count] = ch;
                symbols.Add(-1 - unknown.Count);
            }
        }
        if (unknown.Count == 0)
        {
            _merger.Apply(symbols);
            output.AddRange(symbols);
            return;
        }
        // Merge each run of known characters separately, then spell the unknown characters as byte tokens.
        var run = new List<int>();
        int k = 0;
        foreach (int sym in symbols)
        {
            if (sym >= 0) { run.Add(sym); k++; continue; }
            _merger.Apply(run);
            output.AddRange(run);
            run.Clear();
            foreach (byte b in Encoding.UTF8.GetBytes(unknown[k]))
            {
                int bt = _byteTokens[b];
                if (bt >= 0) output.Add(bt);
                else if (UnkId is int unk) output.Add(unk);
            }
            k++;
        }
        _merger.Apply(run);
        output.AddRange(run);
    }
}
