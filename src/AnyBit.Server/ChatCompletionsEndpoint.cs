using System.Text;
using System.Text.Json;
using AnyBit.Text;
using Microsoft.AspNetCore.Http;

namespace AnyBit.Server;

/// <summary><c>POST /v1/chat/completions</c>: messages through the model's chat template, reply as JSON or events.</summary>
internal static class ChatCompletionsEndpoint
{
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];

    public static async Task HandleAsync(HttpContext http, LanguageModel model, ServerOptions server, string modelName)
    {
        var (reader, doc) = await RequestReader.ReadAsync(http.Request, http.RequestAborted);
        using (doc)
        {
            var messages = ReadMessages(reader);
            var (options, stream, includeUsage, maxTokensParam) = reader.Generation(server, server.DefaultChatMaxTokens);
            int[] prompt;
            try
            {
                prompt = model.EncodeChat(messages);
            }
            catch (AnyBitException e)
            {
                throw new ApiError(400, e.Message, param: "messages");
            }
            await GenerationResponder.RespondAsync(http, model, modelName, prompt, model.ChatOptions(options), stream, includeUsage, maxTokensParam, new ChatShape());
        }
    }

    private static List<ChatTurn> ReadMessages(RequestReader reader)
    {
        if (reader.Get("messages") is not JsonElement list || list.ValueKind != JsonValueKind.Array)
            throw ApiError.BadField("messages", "'messages' is required and must be an array");
        var turns = new List<ChatTurn>();
        int i = 0;
        foreach (var m in list.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiError.BadField(at, $"'{at}' must be an object");
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw ApiError.BadField(at + ".role", $"'{at}.role' is required and must be a string");
            string r = role.GetString()!;
            if (Array.IndexOf(Roles, r) < 0) throw ApiError.BadField(at + ".role", $"'{at}.role' is '{r}'; expected one of {string.Join(", ", Roles)}");
            turns.Add(new ChatTurn(r == "developer" ? "system" : r, ReadContent(m, at)));
        }
        if (turns.Count == 0) throw ApiError.BadField("messages", "'messages' is empty");
        return turns;
    }

    /// <summary>Content is a string, null (an assistant turn with tool calls), or an array of text parts.</summary>
    private static string ReadContent(JsonElement message, string at)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw ApiError.BadField(at + ".content", $"'{at}.content' must be a string or an array of parts");
        var text = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                throw ApiError.BadField(at + ".content", $"each part of '{at}.content' needs a string 'type'");
            if (type.GetString() != "text") throw ApiError.BadField(at + ".content", $"'{at}.content' has a '{type.GetString()}' part; this model reads text only");
            if (!part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw ApiError.BadField(at + ".content", $"a text part of '{at}.content' needs a string 'text'");
            text.Append(t.GetString());
        }
        return text.ToString();
    }
}
