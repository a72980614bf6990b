using System.Text.Json;
using AnyBit.Inference;
using AnyBit.Models;
using Microsoft.AspNetCore.Http;

namespace AnyBit.Server;

/// <summary>
/// Reads a JSON request body and its fields with the checks OpenAI's API makes: every known field must have the
/// right type and range, or the request is refused with a 400 naming the field. Unknown fields are ignored, as
/// OpenAI-compatible servers do, so clients that send newer options still work.
/// </summary>
internal sealed class RequestReader
{
    private readonly JsonElement _root;

    private RequestReader(JsonElement root) => _root = root;

    /// <summary>Parses the body (bounded by Kestrel's size limit); malformed JSON or invalid UTF-8 is a 400.</summary>
    public static async Task<(RequestReader Reader, JsonDocument Document)> ReadAsync(HttpRequest request, CancellationToken cancellation)
    {
        byte[] body;
        try
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, cancellation);
            body = buffer.ToArray();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ApiError(413, "the request body is too large");
        }
        // System.Text.Json checks UTF-8 only when a string is read; check the whole body first so that invalid
        // bytes are a 400 here rather than an exception deep inside a handler.
        if (!System.Text.Unicode.Utf8.IsValid(body)) throw new ApiError(400, "the request body is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new ApiError(400, $"the request body is not valid JSON: {e.Message}");
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new ApiError(400, "the request body must be a JSON object");
        }
        return (new RequestReader(doc.RootElement), doc);
    }

    public JsonElement? Get(string name) =>
        _root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name)
    {
        if (Get(name) is not JsonElement v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw ApiError.BadField(name, $"'{name}' must be a string");
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not JsonElement v) return null;
        return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw ApiError.BadField(name, $"'{name}' must be a boolean");
    }

    public double? Number(string name, double min, double max)
    {
        if (Get(name) is not JsonElement v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d)) throw ApiError.BadField(name, $"'{name}' must be a number");
        if (!(d >= min && d <= max)) throw ApiError.BadField(name, $"'{name}' is {d}; it must be between {min} and {max}");
        return d;
    }

    public long? Integer(string name, long min, long max)
    {
        if (Get(name) is not JsonElement v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n)) throw ApiError.BadField(name, $"'{name}' must be an integer");
        if (n < min || n > max) throw ApiError.BadField(name, $"'{name}' is {n}; it must be between {min} and {max}");
        return n;
    }

    /// <summary>
    /// The sampling and stopping parameters shared by chat and text completions; <c>MaxTokensParam</c> names the field
    /// that set max tokens (null when the default applies).
    /// </summary>
    public (GenerationOptions Options, bool Stream, bool IncludeUsage, string? MaxTokensParam) Generation(ServerOptions server, int defaultMaxTokens)
    {
        String("model");
        String("user");
        Integer("n", 1, 1); // one choice per request
        Number("presence_penalty", -2, 2);
        Number("frequency_penalty", -2, 2);
        if (Bool("logprobs") == true) throw ApiError.BadField("logprobs", "logprobs are not supported");
        long? max = Integer("max_completion_tokens", 0, int.MaxValue) ?? Integer("max_tokens", 0, int.MaxValue);
        string maxName = Get("max_completion_tokens") is not null ? "max_completion_tokens" : "max_tokens";
        if (max > server.MaxTokensLimit) throw ApiError.BadField(maxName, $"'{maxName}' is {max}; this server allows at most {server.MaxTokensLimit}");

        var sampling = new SamplingOptions
        {
            Temperature = (float)(Number("temperature", 0, 2) ?? 1.0),
            TopP = (float)(Number("top_p", 0, 1) ?? 1.0),
            TopK = (int)(Integer("top_k", 0, int.MaxValue) ?? 0),
            MinP = (float)(Number("min_p", 0, 1) ?? 0),
            RepetitionPenalty = (float)(Number("repeat_penalty", 0.01, 10) ?? 1.0),
            Seed = Integer("seed", long.MinValue, long.MaxValue) is long seed ? unchecked((ulong)seed) : null,
        };
        if (sampling.TopP == 0) sampling = sampling with { TopP = 1e-6f };

        bool stream = Bool("stream") ?? false;
        bool includeUsage = false;
        if (Get("stream_options") is JsonElement so)
        {
            if (so.ValueKind != JsonValueKind.Object) throw ApiError.BadField("stream_options", "'stream_options' must be an object");
            if (so.TryGetProperty("include_usage", out var iu))
            {
                if (iu.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw ApiError.BadField("stream_options", "'stream_options.include_usage' must be a boolean");
                includeUsage = iu.GetBoolean();
            }
        }
        var options = new GenerationOptions
        {
            MaxTokens = (int)(max ?? defaultMaxTokens),
            Sampling = sampling,
            StopSequences = Stops(),
            StopAtEndOfSequence = !(Bool("ignore_eos") ?? false), // llama.cpp's extension, for benchmarks
            CachePrompt = Bool("cache_prompt") ?? true, // llama.cpp's extension: false processes the whole prompt
        };
        return (options, stream, includeUsage, max is null ? null : maxName);
    }

    private string[] Stops()
    {
        if (Get("stop") is not JsonElement v) return [];
        if (v.ValueKind == JsonValueKind.String) return v.GetString() is { Length: > 0 } s ? [s] : [];
        if (v.ValueKind != JsonValueKind.Array) throw ApiError.BadField("stop", "'stop' must be a string or an array of strings");
        var stops = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw ApiError.BadField("stop", "'stop' must be a string or an array of strings");
            if (item.GetString() is { Length: > 0 } s) stops.Add(s);
        }
        if (stops.Count > 16) throw ApiError.BadField("stop", "'stop' has more than 16 sequences");
        return stops.ToArray();
    }
}
