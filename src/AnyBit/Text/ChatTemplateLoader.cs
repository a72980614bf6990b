using System.Text.Json;
using AnyBit.IO;

namespace AnyBit.Text;

/// <summary>Finds a model's chat template where transformers and llama.cpp keep it.</summary>
public static class ChatTemplateLoader
{
    /// <summary>
    /// From a Hugging Face folder: <c>chat_template.jinja</c> (transformers ≥ 4.43 writes it there), else
    /// <c>chat_template</c> in tokenizer_config.json (a string, or a list of named templates of which "default" is
    /// used). Null when there is none.
    /// </summary>
    public static string? FromFolder(string folder)
    {
        string jinja = Path.Combine(folder, "chat_template.jinja");
        if (File.Exists(jinja)) return File.ReadAllText(jinja);
        string configPath = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(configPath)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
            if (!doc.RootElement.TryGetProperty("chat_template", out var t)) return null;
            if (t.ValueKind == JsonValueKind.String) return t.GetString();
            if (t.ValueKind == JsonValueKind.Array)
            {
                string? first = null;
                foreach (var entry in t.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("template", out var body) || body.ValueKind != JsonValueKind.String) continue;
                    first ??= body.GetString();
                    if (entry.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() == "default") return body.GetString();
                }
                return first;
            }
            return null;
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(configPath, $"not valid JSON ({e.Message})");
        }
    }

    /// <summary>From GGUF metadata (<c>tokenizer.chat_template</c>).</summary>
    public static string? FromGguf(GgufFile gguf) => gguf.GetString("tokenizer.chat_template");

    /// <summary>
    /// Parses <paramref name="source"/> with the tokenizer's BOS/EOS strings, or returns ChatML when the model has
    /// no template. A template that does not parse is an error naming the model.
    /// </summary>
    public static ChatTemplate Create(string? source, ITokenizer? tokenizer, string modelPath)
    {
        string? bos = tokenizer?.BosId is int b ? tokenizer.Piece(b) : null;
        string? eos = tokenizer?.EosId is int e ? tokenizer.Piece(e) : null;
        if (string.IsNullOrWhiteSpace(source)) return ChatTemplate.ChatML(bos, eos);
        try
        {
            return ChatTemplate.Parse(source, bos, eos);
        }
        catch (Templates.JinjaException ex)
        {
            throw new InvalidModelFileException(modelPath, ex.Message);
        }
    }
}
