using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;

namespace AnyBit.Tests;

/// <summary>One <c>anybit serve</c> on gutenberg-llama, with an API key, shared by the server tests.</summary>
public sealed class ServerFixture : IDisposable
{
    public const string ApiKey = "test-key-123";
    public static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");
    public ServerProcess Server { get; } = new("-m", ModelPath, "--parallel", "4", "--ctx", "512", "--api-key", ApiKey, "--queue", "64");

    public void Dispose() => Server.Dispose();
}

/// <summary>
/// The OpenAI-compatible server driven through the official OpenAI .NET package and raw HTTP: outputs equal
/// <c>anybit run</c>'s, streams are well formed under load, cancelled streams free their slots, and bad requests
/// get 4xx errors while the server keeps serving.
/// </summary>
[Collection("Serial")]
public class ServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private ServerProcess Server => fixture.Server;
    private const string Prompt = "It was a dark and stormy night, and";

    private ChatClient OpenAiChat() => new("gutenberg-llama", new ApiKeyCredential(ServerFixture.ApiKey),
        new OpenAIClientOptions { Endpoint = new Uri(Server.BaseUri, "v1/") });

    private static (string Text, int[] Ids) AnybitRun(string prompt, int maxTokens)
    {
        var r = CliRunner.Run("run", "-m", ServerFixture.ModelPath, "--prompt", prompt, "--temperature", "0", "-n", maxTokens.ToString(), "--ctx", "512", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        return (doc.RootElement.GetProperty("text").GetString()!, doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [Fact]
    public async Task Chat_completion_through_the_OpenAI_client_equals_anybit_run_on_the_rendered_prompt()
    {
        var client = OpenAiChat();
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16 };
        ChatMessage[] messages = [new SystemChatMessage("You tell stories."), new UserChatMessage("Tell me about the sea.")];
        ChatCompletion completion = await client.CompleteChatAsync(messages, options);

        // gutenberg-llama has no chat template, so the server uses ChatML; anybit run gets the same text.
        string rendered = "<|im_start|>system\nYou tell stories.<|im_end|>\n<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n";
        var (expected, ids) = AnybitRun(rendered, 16);
        Assert.Equal(expected, completion.Content[0].Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ids.Length, completion.Usage.OutputTokenCount);
        Assert.Equal(ids.Length == 16 ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);
        Assert.True(completion.Usage.InputTokenCount > 20);

        // Streaming gives the same text in pieces, then the finish reason and usage.
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var u in client.CompleteChatStreamingAsync(messages, options))
        {
            updates++;
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal(expected, text.ToString());
        Assert.True(updates > 3);
        Assert.Equal(completion.FinishReason, finish);
        Assert.NotNull(usage); // the client asks for stream_options.include_usage
        Assert.Equal(completion.Usage.OutputTokenCount, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Completions_through_the_OpenAI_pipeline_equal_anybit_run()
    {
        var (expected, ids) = AnybitRun(Prompt, 20);
        var pipeline = OpenAiChat().Pipeline;

        using var plain = await SendAsync(pipeline, new { model = "gutenberg-llama", prompt = Prompt, max_tokens = 20, temperature = 0 });
        Assert.Equal(200, plain.Response!.Status);
        using var json = JsonDocument.Parse(plain.Response.Content);
        var choice = json.RootElement.GetProperty("choices")[0];
        Assert.Equal("text_completion", json.RootElement.GetProperty("object").GetString());
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal(ids.Length, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        using var streamed = await SendAsync(pipeline, new { prompt = Prompt, max_tokens = 20, temperature = 0, stream = true });
        var events = ParseEvents(streamed.Response!.Content.ToString());
        Assert.Equal(expected, string.Concat(events.Select(e => e.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString())).SelectMany(t => t)));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>One streaming chat request read to the end and checked; returns the text.</summary>
    private static async Task<string> StreamChatAsync(HttpClient http, string user, int maxTokens)
    {
        string body = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = user } }, max_tokens = maxTokens, temperature = 0, stream = true });
        using var response = await http.PostAsync("v1/chat/completions", Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType!.ToString());
        var events = ParseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("assistant", events[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        return string.Concat(events.SelectMany(e => e.GetProperty("choices").EnumerateArray())
            .Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
    }

    private static long Get(JsonElement health, params string[] path)
    {
        foreach (var p in path) health = health.GetProperty(p);
        return health.GetInt64();
    }

    [Fact]
    public async Task Load_16_concurrent_streaming_clients_x_20_requests_without_errors_and_memory_returns_to_idle()
    {
        var idle = await Server.HealthAsync();
        long completedBefore = Get(idle, "requests_completed");
        string[] users = ["Tell me a story.", "Who is Holmes?", "Describe the sea.", "What is a letter?"];
        var expected = new Dictionary<string, string>();
        using (var http = Server.Client(ServerFixture.ApiKey))
            foreach (var u in users) expected[u] = await StreamChatAsync(http, u, 6);

        int errors = 0;
        var clients = Enumerable.Range(0, 16).Select(c => Task.Run(async () =>
        {
            using var http = Server.Client(ServerFixture.ApiKey);
            for (int r = 0; r < 20; r++)
            {
                string user = users[(c + r) % users.Length];
                try
                {
                    // Greedy output does not depend on what else runs at the same time.
                    Assert.Equal(expected[user], await StreamChatAsync(http, user, 6));
                }
                catch
                {
                    Interlocked.Increment(ref errors);
                    throw;
                }
            }
        })).ToArray();
        await Task.WhenAll(clients);
        Assert.Equal(0, errors);

        var after = await Server.HealthAsync();
        Assert.Equal(completedBefore + users.Length + 16 * 20, Get(after, "requests_completed"));
        Assert.Equal(0, Get(after, "requests_failed"));
        Assert.Equal(0, Get(after, "slots_processing"));
        Assert.Equal(0, Get(after, "queued_requests"));
        // KV caches and scratch are allocated once per slot at start-up: native memory is exactly the idle level.
        Assert.Equal(Get(idle, "memory", "native_bytes"), Get(after, "memory", "native_bytes"));
        Assert.True(Get(after, "memory", "managed_heap_bytes") < Get(idle, "memory", "managed_heap_bytes") + (64L << 20),
            $"managed heap {Get(after, "memory", "managed_heap_bytes")} vs idle {Get(idle, "memory", "managed_heap_bytes")}");
    }

    [Fact]
    public async Task Cancelling_half_the_streams_midway_frees_their_slots_for_reuse()
    {
        var before = await Server.HealthAsync();
        long cancelledBefore = Get(before, "requests_cancelled");
        string body = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = 400, temperature = 0, stream = true });
        var streams = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            using var http = Server.Client(ServerFixture.ApiKey, hangUp: i % 2 == 0);
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(body) };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            if (i % 2 == 0)
            {
                // Read a few events, then hang up.
                for (int events = 0; events < 6;)
                    if ((await reader.ReadLineAsync())!.StartsWith("data: ", StringComparison.Ordinal)) events++;
                return false;
            }
            ParseEvents(await reader.ReadToEndAsync());
            return true;
        })).ToArray();
        var finished = await Task.WhenAll(streams);
        Assert.Equal(4, finished.Count(f => f));

        await LanguageModelTests.WaitUntil(() =>
        {
            var h = Server.HealthAsync().Result;
            return Get(h, "requests_cancelled") == cancelledBefore + 4 && Get(h, "slots_processing") == 0;
        });
        // Every slot serves again.
        using var client = Server.Client(ServerFixture.ApiKey);
        var again = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => StreamChatAsync(client, "Again?", 4)));
        Assert.All(again, t => Assert.Equal(again[0], t));
        Assert.Equal(0, Get(await Server.HealthAsync(), "slots_processing"));
    }

    [Theory]
    [InlineData("v1/chat/completions", "{\"messages\": \"hello\"}", 400, "messages")]
    [InlineData("v1/chat/completions", "{\"messages\": []}", 400, "messages")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", 400, "messages[0].role")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "messages[0].content")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": -5}", 400, "max_tokens")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 100000}", 400, "max_tokens")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": \"hot\"}", 400, "temperature")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 7}", 400, "temperature")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": -1}", 400, "top_p")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": \"yes\"}", 400, "stream")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 3}", 400, "n")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": [1, 2]}", 400, "stop")]
    [InlineData("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"seed\": 1.5}", 400, "seed")]
    [InlineData("v1/chat/completions", "{\"messages\": [", 400, null)]
    [InlineData("v1/chat/completions", "[1, 2]", 400, null)]
    [InlineData("v1/completions", "{\"prompt\": [1, -2]}", 400, "prompt")]
    [InlineData("v1/completions", "{\"prompt\": {\"a\": 1}}", 400, "prompt")]
    [InlineData("v1/completions", "{}", 400, "prompt")]
    [InlineData("detokenize", "{\"tokens\": [99999999]}", 400, "tokens")]
    [InlineData("tokenize", "{\"content\": 3}", 400, "content")]
    public async Task Bad_requests_get_a_4xx_error_object_and_the_server_keeps_serving(string path, string body, int status, string? param)
    {
        using var http = Server.Client(ServerFixture.ApiKey);
        using var response = await http.PostAsync(path, Json(body));
        Assert.Equal(status, (int)response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        if (param is not null) Assert.Equal(param, error.GetProperty("param").GetString());
        await AssertStillServing();
    }

    [Fact]
    public async Task Invalid_utf8_huge_prompts_oversized_bodies_and_missing_auth_are_refused()
    {
        using var http = Server.Client(ServerFixture.ApiKey);
        var bytes = new ByteArrayContent([.. "{\"prompt\": \"ab"u8.ToArray(), 0xFF, 0xFE, .. "\"}"u8.ToArray()]);
        bytes.Headers.ContentType = new("application/json");
        using (var r = await http.PostAsync("v1/completions", bytes)) Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);

        // A prompt longer than the 512-position context.
        string longPrompt = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog ", 200));
        using (var r = await http.PostAsync("v1/completions", Json(JsonSerializer.Serialize(new { prompt = longPrompt }))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Equal("context_length_exceeded", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }
        // A body over the 4 MiB limit.
        string huge = JsonSerializer.Serialize(new { prompt = new string('a', 5 << 20) });
        // With Expect: 100-continue the client waits for the verdict before uploading, so it reads the 413
        // instead of a connection reset mid-upload.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Json(huge) })
        {
            request.Headers.ExpectContinue = true;
            using var r = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        }

        using var anonymous = Server.Client();
        using (var r = await anonymous.GetAsync("v1/models")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using var wrong = Server.Client("wrong-key");
        using (var r = await wrong.PostAsync("v1/completions", Json("{\"prompt\": \"x\"}")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Equal("invalid_api_key", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }
        using (var r = await anonymous.GetAsync("health")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await http.GetAsync("v1/nothing")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);

        var models = await http.GetFromJsonAsync<JsonElement>("v1/models");
        Assert.Equal("gutenberg-llama", models.GetProperty("data")[0].GetProperty("id").GetString());
        var tokens = await (await http.PostAsync("tokenize", Json("{\"content\": \"Hello world\"}"))).Content.ReadFromJsonAsync<JsonElement>();
        string roundTrip = (await (await http.PostAsync("detokenize", Json(JsonSerializer.Serialize(new { tokens = tokens.GetProperty("tokens") })))).Content
            .ReadFromJsonAsync<JsonElement>()).GetProperty("content").GetString()!;
        Assert.EndsWith("Hello world", roundTrip);
        await AssertStillServing();
    }

    private async Task AssertStillServing()
    {
        using var http = Server.Client(ServerFixture.ApiKey);
        using var ok = await http.PostAsync("v1/completions", Json("{\"prompt\": \"Hello\", \"max_tokens\": 2, \"temperature\": 0}"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    private async Task<PipelineMessage> SendAsync(ClientPipeline pipeline, object body)
    {
        // The official client has no public legacy-completions API, so the request goes through its pipeline
        // (its transport, authentication and retry policies) as a protocol call.
        var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(Server.BaseUri, "v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromObjectAsJson(body));
        message.Apply(new RequestOptions { ErrorOptions = ClientErrorBehaviors.NoThrow });
        await pipeline.SendAsync(message);
        return message;
    }

    /// <summary>Parses an event stream strictly: only "data: " lines and blank separators, JSON events, one final [DONE].</summary>
    internal static List<JsonElement> ParseEvents(string body)
    {
        var events = new List<JsonElement>();
        var blocks = body.Split("\n\n");
        Assert.Equal("", blocks[^1]);
        Assert.Equal("data: [DONE]", blocks[^2]);
        foreach (var block in blocks[..^2])
        {
            Assert.StartsWith("data: ", block);
            Assert.DoesNotContain('\n', block);
            events.Add(JsonDocument.Parse(block["data: ".Length..]).RootElement.Clone());
        }
        int finishes = events.Count(e => e.GetProperty("choices").EnumerateArray().Any(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String));
        Assert.Equal(1, finishes);
        Assert.Single(events.Select(e => e.GetProperty("id").GetString()).Distinct());
        return events;
    }
}
