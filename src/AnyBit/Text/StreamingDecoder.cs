using System.Text;

namespace AnyBit.Text;

/// <summary>
/// Turns a stream of token ids into text as they are generated. A token may end in the middle of a UTF-8 character
/// (byte-fallback tokens, byte-level BPE pieces of CJK or emoji); those bytes are held back until the character is
/// complete, so the output never shows a replacement character that the full decode would not.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly ITokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private int _spacesToStrip;
    private readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    private readonly char[] _chars = new char[1024];

    public StreamingDecoder(ITokenizer tokenizer, bool skipSpecial = true)
    {
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecial;
        _spacesToStrip = tokenizer.LeadingSpacesToStrip;
    }

    /// <summary>Adds one token and returns the text that is now complete (possibly empty).</summary>
    public string Append(int id)
    {
        if (_skipSpecial && _tokenizer.IsSpecial(id)) return "";
        var bytes = _tokenizer.TokenBytes(id);
        // Strip the decoder's leading space(s) only at the very start of the output.
        while (_spacesToStrip > 0 && bytes.Length > 0)
        {
            if (bytes[0] == (byte)' ') bytes = bytes[1..];
            _spacesToStrip--;
        }
        if (bytes.Length == 0) return "";
        // System.Text.Decoder keeps partial sequences between calls and emits U+FFFD for invalid ones, exactly the
        // behaviour of Python's bytes.decode(errors="replace") that the reference decoders use.
        int needed = _utf8.GetCharCount(bytes, flush: false);
        char[] buffer = needed <= _chars.Length ? _chars : new char[needed];
        int n = _utf8.GetChars(bytes, buffer, flush: false);
        return new string(buffer, 0, n);
    }

    /// <summary>Ends the stream: incomplete trailing bytes become U+FFFD.</summary>
    public string Flush()
    {
        int n = _utf8.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        return new string(_chars, 0, n);
    }
}
