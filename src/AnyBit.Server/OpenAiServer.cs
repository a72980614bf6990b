using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AnyBit.Kernels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AnyBit.Server;

/// <summary>
/// The OpenAI-compatible HTTP server: ASP.NET Core minimal APIs over a <see cref="LanguageModel"/> whose scheduler
/// runs the sequences. Every refusal is an OpenAI error object with a 4xx status; nothing a client sends can
/// produce a 500 (a bug still answers 500 with an error object rather than a stack trace).
/// </summary>
public static class OpenAiServer
{
    /// <summary>Builds the web application (not started) serving <paramref name="model"/>.</summary>
    public static WebApplication Build(LanguageModel model, ServerOptions options)
    {
        if (options.Port is < 0 or > 65535) throw new AnyBitException($"--port {options.Port} must be between 0 and 65535");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        // One line per finished request (its prompt, cached and completion tokens) from the server's own category;
        // the framework's stays at warnings. Logs go to stderr: stdout carries the "listening on" address for scripts.
        builder.Logging.AddFilter(GenerationResponder.LogCategory, LogLevel.Information);
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        var app = builder.Build();
        string modelName = options.ModelAlias ?? model.Name;

        app.Use(async (http, next) =>
        {
            try
            {
                if (options.ApiKey is not null && http.Request.Path != "/health" && !Authorized(http.Request, options.ApiKey))
                    throw new ApiError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'", code: "invalid_api_key");
                await next(http);
            }
            catch (ApiError e) when (!http.Response.HasStarted)
            {
                await WriteError(http, e);
            }
            catch (BadHttpRequestException e) when (!http.Response.HasStarted)
            {
                await WriteError(http, new ApiError(e.StatusCode, e.StatusCode == 413 ? "the request body is too large" : $"bad request: {e.Message}"));
            }
            catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
            {
                // The client went away; its generation was cancelled with the request.
            }
            catch (IOException) when (http.RequestAborted.IsCancellationRequested)
            {
            }
            catch (Exception e) when (!http.Response.HasStarted)
            {
                app.Logger.LogError("internal error on {Path}: {Type}: {Message}", http.Request.Path, e.GetType().Name, e.Message);
                await WriteError(http, new ApiError(500, $"internal error: {e.Message}", "server_error"));
            }
        });

        app.MapPost("/v1/chat/completions", (HttpContext http) => ChatCompletionsEndpoint.HandleAsync(http, model, options, modelName));
        app.MapPost("/v1/completions", (HttpContext http) => CompletionsEndpoint.HandleAsync(http, model, options, modelName));
        app.MapGet("/v1/models", () => Results.Json(new
        {
            Object = "list",
            Data = new[]
            {
                new
                {
                    Id = modelName, Object = "model", Created = 0L, OwnedBy = "anybit",
                    Meta = new { ContextSize = model.ContextSize, VocabSize = model.Config.VocabSize, Architecture = model.Config.Architecture.Name },
                },
            },
        }, OpenAiJson.Options));
        app.MapGet("/health", () => Results.Json(Health(model), OpenAiJson.Options));
        app.MapPost("/tokenize", (HttpContext http) => TokenizeAsync(http, model));
        app.MapPost("/detokenize", (HttpContext http) => DetokenizeAsync(http, model));
        app.MapFallback((HttpContext http) => throw new ApiError(404, $"no endpoint {http.Request.Method} {http.Request.Path}", code: "not_found"));
        return app;
    }

    /// <summary>Constant-time comparison, so the key cannot be guessed byte by byte from response times.</summary>
    private static bool Authorized(HttpRequest request, string key)
    {
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[7..].Trim()), Encoding.UTF8.GetBytes(key));
    }

    private static async Task WriteError(HttpContext http, ApiError e)
    {
        http.Response.StatusCode = e.Status;
        http.Response.ContentType = "application/json";
        await http.Response.Body.WriteAsync(e.ToJson());
    }

    /// <summary>Status for monitoring and tests: slots, queue, counters and memory.</summary>
    public static object Health(LanguageModel model)
    {
        var s = model.Scheduler;
        using var process = Process.GetCurrentProcess();
        return new
        {
            Status = "ok",
            SlotsTotal = s.SlotCount,
            SlotsProcessing = s.ActiveSequences,
            SlotsIdle = s.SlotCount - s.ActiveSequences,
            QueuedRequests = s.QueuedRequests,
            RequestsCompleted = s.CompletedRequests,
            RequestsCancelled = s.CancelledRequests,
            RequestsFailed = s.FailedRequests,
            PromptTokensCached = s.CachedPromptTokens,
            Memory = new
            {
                NativeBytes = NativeBuffer.AllocatedBytes,
                ManagedHeapBytes = GC.GetGCMemoryInfo().HeapSizeBytes,
                WorkingSetBytes = process.WorkingSet64,
            },
        };
    }

    private static async Task TokenizeAsync(HttpContext http, LanguageModel model)
    {
        var (reader, doc) = await RequestReader.ReadAsync(http.Request, http.RequestAborted);
        using (doc)
        {
            string content = reader.String("content") ?? throw ApiError.BadField("content", "'content' is required");
            bool addSpecial = reader.Bool("add_special") ?? true;
            int[] ids;
            try { ids = model.Tokenize(content, addSpecial); }
            catch (AnyBitException e) { throw new ApiError(400, e.Message); }
            await http.Response.WriteAsJsonAsync(new { Tokens = ids }, OpenAiJson.Options);
        }
    }

    private static async Task DetokenizeAsync(HttpContext http, LanguageModel model)
    {
        var (reader, doc) = await RequestReader.ReadAsync(http.Request, http.RequestAborted);
        using (doc)
        {
            if (reader.Get("tokens") is not JsonElement t || t.ValueKind != JsonValueKind.Array) throw ApiError.BadField("tokens", "'tokens' is required and must be an array of integers");
            var ids = new List<int>();
            foreach (var e in t.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id)) throw ApiError.BadField("tokens", "'tokens' must be an array of integers");
                ids.Add(id);
            }
            string text;
            try { text = model.Detokenize(ids.ToArray()); }
            catch (AnyBitException e) { throw ApiError.BadField("tokens", e.Message); }
            await http.Response.WriteAsJsonAsync(new { Content = text }, OpenAiJson.Options);
        }
    }
}
