namespace AnyBit.Text;

/// <summary>
/// transformers' <c>clean_up_tokenization_spaces</c>: after decoding, remove the space tokenizers of old (BERT,
/// GPT-2 era) put before punctuation and English contractions. Models whose tokenizer_config.json sets it (Llama
/// 3.1 does) decode this way in transformers and transformers.js, so "a ." comes back as "a.".
/// </summary>
public static class TokenizationSpaces
{
    // In transformers' order; each is a plain replacement of the whole text.
    private static readonly (string From, string To)[] Rules =
    [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ];

    public static string CleanUp(string text)
    {
        if (!text.Contains(' ')) return text;
        foreach (var (from, to) in Rules) text = text.Replace(from, to, StringComparison.Ordinal);
        return text;
    }
}
