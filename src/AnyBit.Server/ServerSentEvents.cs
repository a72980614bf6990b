using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace AnyBit.Server;

/// <summary>Writes an OpenAI-style event stream: <c>data: {json}</c> events, ending with <c>data: [DONE]</c>.</summary>
internal sealed class ServerSentEvents(HttpResponse response)
{
    private static readonly byte[] Prefix = "data: "u8.ToArray(), Separator = "\n\n"u8.ToArray(), Done = "data: [DONE]\n\n"u8.ToArray();

    public void Start()
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public async Task WriteAsync(object payload, CancellationToken cancellation)
    {
        await response.Body.WriteAsync(Prefix, cancellation);
        await response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(payload, OpenAiJson.Options), cancellation);
        await response.Body.WriteAsync(Separator, cancellation);
        await response.Body.FlushAsync(cancellation);
    }

    public async Task DoneAsync(CancellationToken cancellation)
    {
        await response.Body.WriteAsync(Done, cancellation);
        await response.Body.FlushAsync(cancellation);
    }
}

/// <summary>JSON settings for responses: OpenAI's snake_case names, nulls kept (clients expect e.g. finish_reason: null).</summary>
internal static class OpenAiJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string FinishReason(AnyBit.Inference.FinishReason reason) => reason == AnyBit.Inference.FinishReason.Length ? "length" : "stop";

    /// <summary>OpenAI's usage object; <c>prompt_tokens_details.cached_tokens</c> counts the prompt tokens taken from a slot's cache.</summary>
    public static object Usage(AnyBit.Inference.GenerationUsage u) => new
    {
        PromptTokens = u.PromptTokens,
        CompletionTokens = u.CompletionTokens,
        TotalTokens = u.TotalTokens,
        PromptTokensDetails = new { CachedTokens = u.CachedTokens },
    };
}
