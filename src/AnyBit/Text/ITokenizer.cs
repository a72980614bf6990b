namespace AnyBit.Text;

/// <summary>
/// Text ↔ token ids, as the model's reference tokenizer does it. Implementations precompute the bytes each token
/// decodes to, so that decoding (and streaming) is a concatenation plus at most one leading-space strip.
/// </summary>
public interface ITokenizer
{
    /// <summary>What kind of tokenizer this is, for <c>anybit inspect</c> (e.g. "tokenizer.json byte-level BPE").</summary>
    string Kind { get; }

    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, if the tokenizer has one.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id, if the tokenizer has one.</summary>
    int? EosId { get; }

    /// <summary>
    /// Tokenizes <paramref name="text"/>. With <paramref name="addSpecial"/> the BOS/EOS tokens are added exactly as the
    /// tokenizer's post-processor (or GGUF flags) say; special tokens written in the text are always recognised.
    /// </summary>
    int[] Encode(string text, bool addSpecial = true);

    /// <summary>The vocabulary entry of a token, as stored (e.g. "Ġthe", "▁the", "&lt;0x0A&gt;").</summary>
    string Piece(int id);

    /// <summary>True for control tokens (BOS, EOS, chat markers) that generation output omits.</summary>
    bool IsSpecial(int id);

    /// <summary>The bytes this token contributes to decoded text (not yet UTF-8 validated: a token may hold part of a character).</summary>
    ReadOnlySpan<byte> TokenBytes(int id);

    /// <summary>How many leading spaces the decoder removes from the very start of the text (SentencePiece's dummy prefix).</summary>
    int LeadingSpacesToStrip { get; }

    /// <summary>
    /// True when the tokenizer's config asks for <c>clean_up_tokenization_spaces</c>: <see cref="TokenizerExtensions.Decode"/>
    /// then removes spaces before punctuation and contractions (<see cref="TokenizationSpaces"/>), as transformers does.
    /// Streaming output (<see cref="StreamingDecoder"/>) is not cleaned up.
    /// </summary>
    bool CleanUpTokenizationSpaces => false;
}

/// <summary>Decoding helpers shared by every tokenizer.</summary>
public static class TokenizerExtensions
{
    /// <summary>Decodes ids to text; invalid UTF-8 becomes U+FFFD as in the reference decoders.</summary>
    public static string Decode(this ITokenizer tokenizer, ReadOnlySpan<int> ids, bool skipSpecial = false)
    {
        var decoder = new StreamingDecoder(tokenizer, skipSpecial);
        var sb = new System.Text.StringBuilder();
        foreach (int id in ids) sb.Append(decoder.Append(id));
        sb.Append(decoder.Flush());
        return tokenizer.CleanUpTokenizationSpaces ? TokenizationSpaces.CleanUp(sb.ToString()) : sb.ToString();
    }
}
