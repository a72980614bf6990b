using AnyBit.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AnyBit.Server;

/// <summary>How one endpoint shapes its responses (chat.completion vs text_completion objects).</summary>
internal interface IResponseShape
{
    string IdPrefix { get; }
    /// <summary>The "object" of streamed chunks (chat.completion.chunk, text_completion).</summary>
    string ChunkObject { get; }
    /// <summary>A streamed chunk; <paramref name="first"/> marks the opening chunk (chat sends the role there).</summary>
    object Chunk(string id, long created, string model, string? text, bool first, string? finishReason);
    object Completion(string id, long created, string model, string text, string finishReason, GenerationUsage usage);
}

/// <summary>
/// Runs a generation for an HTTP request and writes it as one JSON response or as server-sent events. The
/// request's abort token is the generation's cancellation: a client that disconnects frees its slot.
/// </summary>
internal static class GenerationResponder
{
    /// <summary>The logger category of the per-request lines.</summary>
    public const string LogCategory = "AnyBit.Server";

    /// <summary>
    /// Generates for <paramref name="prompt"/>; <paramref name="maxTokensParam"/> is the request field that set max
    /// tokens, or null when the server's default applies.
    /// </summary>
    public static async Task RespondAsync(HttpContext http, LanguageModel model, string modelName, int[] prompt, GenerationOptions options,
        bool stream, bool includeUsage, string? maxTokensParam, IResponseShape shape)
    {
        var aborted = http.RequestAborted;
        // A max_tokens the context cannot hold beside the prompt is refused, as OpenAI refuses it, rather than cut
        // short at the context's end: no slot can give what was asked. The default max tokens is only bounded by the
        // context (a chat request without max_tokens must not fail because the default exceeds a small --ctx).
        if (maxTokensParam is not null && (long)prompt.Length + options.MaxTokens > model.ContextSize)
            throw new ApiError(400, $"the prompt has {prompt.Length} tokens and '{maxTokensParam}' asks for {options.MaxTokens} more; the context holds {model.ContextSize} "
                + $"(lower '{maxTokensParam}' or shorten the prompt)", param: maxTokensParam, code: "context_length_exceeded");
        GenerationStream generation;
        try
        {
            generation = model.Generate(prompt, options, aborted);
        }
        catch (SchedulerBusyException e)
        {
            http.Response.Headers.RetryAfter = "1";
            throw new ApiError(503, e.Message, "server_busy", code: "server_busy");
        }
        catch (AnyBitException e) when (e.Message.Contains("context holds", StringComparison.Ordinal))
        {
            throw new ApiError(400, e.Message, param: "messages", code: "context_length_exceeded");
        }
        catch (AnyBitException e)
        {
            throw new ApiError(400, e.Message);
        }

        using (generation)
        {
            string id = shape.IdPrefix + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (!stream)
            {
                var result = await generation.ToResultAsync(aborted);
                LogFinished(http, shape, result.Usage, result.FinishReason);
                await http.Response.WriteAsJsonAsync(shape.Completion(id, created, modelName, result.Text, OpenAiJson.FinishReason(result.FinishReason), result.Usage),
                    OpenAiJson.Options, aborted);
                return;
            }

            var sse = new ServerSentEvents(http.Response);
            sse.Start();
            await sse.WriteAsync(shape.Chunk(id, created, modelName, "", first: true, null), aborted);
            try
            {
                await foreach (var chunk in generation.WithCancellation(aborted))
                {
                    if (chunk.Text.Length > 0) await sse.WriteAsync(shape.Chunk(id, created, modelName, chunk.Text, false, null), aborted);
                    if (chunk.FinishReason is FinishReason reason)
                    {
                        LogFinished(http, shape, chunk.Usage!, reason);
                        await sse.WriteAsync(shape.Chunk(id, created, modelName, null, false, OpenAiJson.FinishReason(reason)), aborted);
                        if (includeUsage) await sse.WriteAsync(UsageChunk(shape, id, created, modelName, chunk.Usage!), aborted);
                    }
                }
            }
            catch (Exception e) when (e is not OperationCanceledException && !aborted.IsCancellationRequested)
            {
                // Headers are gone: report the failure inside the stream, as OpenAI does, then end it.
                await sse.WriteAsync(new ApiErrorEnvelope(new ApiErrorBody(e.Message, "server_error", null, null)), aborted);
            }
            await sse.DoneAsync(aborted);
        }
    }

    /// <summary>"POST /v1/completions: 57 prompt tokens (40 cached), 20 completion tokens, finish length".</summary>
    private static void LogFinished(HttpContext http, IResponseShape shape, GenerationUsage usage, FinishReason reason)
    {
        var log = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(LogCategory);
        log.LogInformation("{Method} {Path}: {Prompt} prompt tokens ({Cached} cached), {Completion} completion tokens, finish {Finish}",
            http.Request.Method, http.Request.Path, usage.PromptTokens, usage.CachedTokens, usage.CompletionTokens, OpenAiJson.FinishReason(reason));
    }

    /// <summary>OpenAI's final usage chunk: no choices, the usage object.</summary>
    private static object UsageChunk(IResponseShape shape, string id, long created, string model, GenerationUsage usage) => new
    {
        Id = id, Object = shape.ChunkObject, Created = created, Model = model, SystemFingerprint = "anybit",
        Choices = Array.Empty<object>(),
        Usage = OpenAiJson.Usage(usage),
    };
}

internal sealed record ApiErrorBody(string Message, string Type, string? Param, string? Code);
internal sealed record ApiErrorEnvelope(ApiErrorBody Error);

internal sealed class ChatShape : IResponseShape
{
    public string IdPrefix => "chatcmpl-";
    public string ChunkObject => "chat.completion.chunk";

    public object Chunk(string id, long created, string model, string? text, bool first, string? finishReason) => new
    {
        Id = id,
        Object = ChunkObject,
        Created = created,
        Model = model,
        SystemFingerprint = "anybit",
        Choices = new[]
        {
            new
            {
                Index = 0,
                Delta = first ? new Dictionary<string, string> { ["role"] = "assistant", ["content"] = "" }
                    : text is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["content"] = text },
                Logprobs = (object?)null,
                FinishReason = finishReason,
            },
        },
    };

    public object Completion(string id, long created, string model, string text, string finishReason, GenerationUsage usage) => new
    {
        Id = id,
        Object = "chat.completion",
        Created = created,
        Model = model,
        SystemFingerprint = "anybit",
        Choices = new[]
        {
            new { Index = 0, Message = new { Role = "assistant", Content = text }, Logprobs = (object?)null, FinishReason = finishReason },
        },
        Usage = OpenAiJson.Usage(usage),
    };
}

internal sealed class TextShape(string echo) : IResponseShape
{
    public string IdPrefix => "cmpl-";
    public string ChunkObject => "text_completion";

    public object Chunk(string id, long created, string model, string? text, bool first, string? finishReason) => new
    {
        Id = id,
        Object = ChunkObject,
        Created = created,
        Model = model,
        SystemFingerprint = "anybit",
        Choices = new[] { new { Text = first ? echo : text ?? "", Index = 0, Logprobs = (object?)null, FinishReason = finishReason } },
    };

    public object Completion(string id, long created, string model, string text, string finishReason, GenerationUsage usage) => new
    {
        Id = id,
        Object = "text_completion",
        Created = created,
        Model = model,
        SystemFingerprint = "anybit",
        Choices = new[] { new { Text = echo + text, Index = 0, Logprobs = (object?)null, FinishReason = finishReason } },
        Usage = OpenAiJson.Usage(usage),
    };
}
