using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace AnyBit.Server;

/// <summary><c>POST /v1/completions</c>: a raw text (or token id) prompt continued, as OpenAI's legacy completions.</summary>
internal static class CompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext http, LanguageModel model, ServerOptions server, string modelName)
    {
        var (reader, doc) = await RequestReader.ReadAsync(http.Request, http.RequestAborted);
        using (doc)
        {
            var (promptIds, promptText) = ReadPrompt(reader, model);
            var (options, stream, includeUsage, maxTokensParam) = reader.Generation(server, 16);
            string echo = reader.Bool("echo") == true ? promptText : "";
            reader.String("suffix");
            await GenerationResponder.RespondAsync(http, model, modelName, promptIds, options, stream, includeUsage, maxTokensParam, new TextShape(echo));
        }
    }

    /// <summary>A string, a one-element array of strings, token ids, or a one-element array of token id arrays.</summary>
    private static (int[] Ids, string Text) ReadPrompt(RequestReader reader, LanguageModel model)
    {
        if (reader.Get("prompt") is not JsonElement p) throw ApiError.BadField("prompt", "'prompt' is required");
        if (p.ValueKind == JsonValueKind.Array && p.GetArrayLength() == 1 && p[0].ValueKind is JsonValueKind.String or JsonValueKind.Array) p = p[0];
        try
        {
            if (p.ValueKind == JsonValueKind.String)
            {
                string text = p.GetString()!;
                return (model.Tokenize(text), text);
            }
            if (p.ValueKind == JsonValueKind.Array)
            {
                var ids = new int[p.GetArrayLength()];
                int i = 0;
                foreach (var e in p.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i]) || ids[i] < 0 || ids[i] >= model.Config.VocabSize)
                        throw ApiError.BadField("prompt", $"'prompt' token ids must be integers in 0..{model.Config.VocabSize - 1}");
                    i++;
                }
                return (ids, model.Model.Tokenizer is null ? "" : model.Detokenize(ids, skipSpecial: true));
            }
        }
        catch (AnyBitException e)
        {
            throw new ApiError(400, e.Message, param: "prompt");
        }
        throw ApiError.BadField("prompt", "'prompt' must be a string, an array of one string, or an array of token ids (one prompt per request)");
    }
}
