namespace AnyBit.Text;

/// <summary>
/// A folder that holds a tokenizer and no model: tokenizer.json (with tokenizer_config.json and chat_template.jinja
/// when present) but no config.json. Tokenizers are published this way (the tokenizer files of a Hub repository, npm
/// tokenizer packages), and <c>anybit tokenize</c> works with them; commands that need weights say that it has none.
/// </summary>
public sealed class TokenizerFolder
{
    public required string Path { get; init; }
    public required ITokenizer Tokenizer { get; init; }
    /// <summary>The Jinja chat template from the folder, or null when it has none.</summary>
    public string? ChatTemplateSource { get; init; }
    /// <summary>The template to render prompts with: the folder's, or ChatML when it has none.</summary>
    public required ChatTemplate ChatTemplate { get; init; }

    /// <summary>True for a folder with tokenizer.json and without config.json.</summary>
    public static bool IsTokenizerOnly(string path) =>
        Directory.Exists(path) && File.Exists(System.IO.Path.Combine(path, "tokenizer.json")) && !File.Exists(System.IO.Path.Combine(path, "config.json"));

    /// <summary>Loads the tokenizer and chat template of <paramref name="folder"/>; throws a one-line error when either is malformed.</summary>
    public static TokenizerFolder Open(string folder)
    {
        string json = System.IO.Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(json)) throw new InvalidModelFileException(folder, "no tokenizer.json in the folder");
        var tokenizer = TokenizerJson.Load(json, System.IO.Path.Combine(folder, "tokenizer_config.json"));
        string? source = ChatTemplateLoader.FromFolder(folder);
        return new TokenizerFolder
        {
            Path = folder,
            Tokenizer = tokenizer,
            ChatTemplateSource = source,
            ChatTemplate = ChatTemplateLoader.Create(source, tokenizer, folder),
        };
    }
}
