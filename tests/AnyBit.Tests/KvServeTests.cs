using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AnyBit.Inference;

namespace AnyBit.Tests;

/// <summary>
/// <c>anybit serve --kv-budget</c> as a real process on gutenberg-llama (f32 cache: 16 KiB per position, 8 MiB per
/// sequence of 512): the budget sets the slots, and a server whose slots and queue are full refuses with 503.
/// </summary>
[Collection("Serial")]
public class KvBudgetServerTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");

    private static StringContent Body(int maxTokens, bool stream, string prompt = "Once upon a time") =>
        new(JsonSerializer.Serialize(new { prompt, max_tokens = maxTokens, temperature = 0, stream, ignore_eos = true }), Encoding.UTF8, "application/json");

    [Fact]
    public async Task A_budget_of_one_sequence_serves_one_and_refuses_the_next_with_503_and_retry_after()
    {
        // 12 MiB holds one 8 MiB sequence; no --parallel, so the budget alone sets the slots.
        using var server = new ServerProcess("-m", ModelPath, "--ctx", "512", "--kv-budget", "12MiB", "--queue", "0");
        await LanguageModelTests.WaitUntil(() => server.Stderr.Contains("[--kv-budget")); // printed just after "listening on"
        Assert.Contains("1 slot × 8.00 MiB", server.Stderr);
        Assert.Equal(1, (await server.HealthAsync()).GetProperty("slots_total").GetInt32());

        using var http = server.Client(hangUp: true);
        using var longRequest = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Body(400, stream: true) };
        using var running = await http.SendAsync(longRequest, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, running.StatusCode);
        await LanguageModelTests.WaitUntil(() => server.HealthAsync().Result.GetProperty("slots_processing").GetInt32() == 1);

        using (var busy = await http.PostAsync("v1/completions", Body(400, stream: false)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            Assert.True(busy.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After");
            var error = (await busy.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal("server_busy", error.GetProperty("type").GetString());
            Assert.Equal("server_busy", error.GetProperty("code").GetString());
            Assert.Contains("busy", error.GetProperty("message").GetString());
        }

        running.Dispose(); // hang up: the slot is freed and serves the next request
        await LanguageModelTests.WaitUntil(() => server.HealthAsync().Result.GetProperty("slots_processing").GetInt32() == 0);
        using var ok = await http.PostAsync("v1/completions", Body(4, stream: false));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task A_request_whose_prompt_and_max_tokens_exceed_the_context_is_a_400_not_a_cut_short_reply()
    {
        using var server = new ServerProcess("-m", ModelPath, "--ctx", "64", "--kv-budget", "3MiB", "--parallel", "2");
        await LanguageModelTests.WaitUntil(() => server.Stderr.Contains("[--kv-budget"));
        Assert.Contains("2 slots × 1.00 MiB", server.Stderr);
        Assert.Contains("the budget holds 3, --parallel caps them", server.Stderr);
        using var http = server.Client();
        using (var tooLong = await http.PostAsync("v1/completions", Body(60, stream: false)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
            var error = (await tooLong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
            Assert.Equal("max_tokens", error.GetProperty("param").GetString());
        }
        // Chat without max_tokens: the default (512) is only bounded by the context, so the request runs.
        using var chat = await http.PostAsync("v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = "Hi" } }, temperature = 0 }), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
    }

    [Theory]
    [InlineData("lots", "--kv-budget 'lots' is not a size")]
    [InlineData("0", "--kv-budget '0' must be at least one byte")]
    [InlineData("4MiB", "one sequence of 512 positions needs 8.00 MiB")]
    public void A_bad_or_too_small_budget_is_a_one_line_error(string budget, string message)
    {
        var r = CliRunner.Run("serve", "-m", ModelPath, "--port", "0", "--ctx", "512", "--kv-budget", budget);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}

/// <summary>
/// Prompt caching in the scheduler, in-process on gutenberg-llama with one slot (so every request meets the
/// previous one's cache): reuse is exact, so a cached request answers what an uncached one does, and
/// <see cref="GenerationUsage.CachedTokens"/> is the common prefix the cache could rewind to exactly.
/// </summary>
public class KvPromptCacheTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");

    private static int[] SherlockIds(LanguageModel model, int count) =>
        Evaluation.Perplexity.TokenizeForEvaluation(model.Tokenizer, Shared.Data("text", "eval", "sherlock.txt"), count);

    private static int CommonPrefix(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        int n = 0;
        while (n < a.Count && n < b.Count && a[n] == b[n]) n++;
        return n;
    }

    /// <param name="cache">KEY[/VALUE][@WINDOW]</param>
    /// <param name="reuse">what the second request reuses: "all" (the whole common prefix), "blocks" (rounded down to
    /// the token block), "none" (the rewind would leave the float32 window: reset instead)</param>
    [Theory]
    [InlineData("f32", "all")]
    [InlineData("q8_0", "all")]
    [InlineData("int4:g16:min:tokens/q8_0", "blocks")]
    [InlineData("q4_0@16", "none")]
    public async Task A_request_sharing_a_prefix_reuses_it_exactly_and_reports_cached_tokens(string cache, string reuse)
    {
        var kv = KvCacheOptions.ParseShort(cache);
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256, ParallelSequences = 1, KvCache = kv });
        var ids = SherlockIds(model, 200);
        var greedy = new GenerationOptions { MaxTokens = 24, StopAtEndOfSequence = false };
        var uncached = greedy with { CachePrompt = false };

        int[] first = ids[..120];
        var a = await model.Generate(first, greedy).ToResultAsync();
        Assert.Equal(0, a.Usage.CachedTokens);
        int[] held = [.. first, .. a.TokenIds.Take(a.TokenIds.Count - 1)]; // the last sampled token never went through the model

        // The book goes on where the model's continuation does not: the common prefix is the 120 prompt tokens or a few more.
        int[] second = ids[..150];
        int common = CommonPrefix(held, second);
        Assert.True(common >= 120, $"common prefix {common}");
        var b = await model.Generate(second, greedy).ToResultAsync();
        int expected = reuse switch { "all" => common, "blocks" => common - common % kv.Key.TokenBlock, _ => 0 };
        Assert.Equal(expected, b.Usage.CachedTokens);
        var fresh = await model.Generate(second, uncached).ToResultAsync();
        Assert.Equal(0, fresh.Usage.CachedTokens);
        Assert.Equal(fresh.TokenIds, b.TokenIds);
        Assert.Equal(fresh.Text, b.Text);

        // A conversation's next turn repeats the whole of what the slot holds: every cache reuses all of it, as
        // nothing is rewound (the float32 window's rows are all still there).
        held = [.. second, .. fresh.TokenIds.Take(fresh.TokenIds.Count - 1)];
        int[] next = [.. second, .. fresh.TokenIds, .. ids[150..160]];
        var c = await model.Generate(next, greedy).ToResultAsync();
        Assert.Equal(held.Length, c.Usage.CachedTokens);
        var cFresh = await model.Generate(next, uncached).ToResultAsync();
        Assert.Equal(cFresh.TokenIds, c.TokenIds);

        Assert.Equal(expected + held.Length, model.Scheduler.CachedPromptTokens);
    }

    [Fact]
    public async Task A_new_request_goes_to_the_slot_holding_its_prefix_and_others_to_the_least_recently_used()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256, ParallelSequences = 2 });
        var ids = SherlockIds(model, 200);
        var greedy = new GenerationOptions { MaxTokens = 4, StopAtEndOfSequence = false };
        int[] p = ids[..60], q = [ids[0], .. ids[100..159]]; // both start with BOS, then differ
        Assert.Equal(0, (await model.Generate(p, greedy).ToResultAsync()).Usage.CachedTokens); // slot 0
        // Only BOS is shared with slot 0's cache, under a tenth of the prompt: q goes to the unused slot instead.
        Assert.Equal(0, (await model.Generate(q, greedy).ToResultAsync()).Usage.CachedTokens);
        Assert.Equal(59, (await model.Generate(p, greedy).ToResultAsync()).Usage.CachedTokens); // the same prompt again: all but its last token
        Assert.Equal(59, (await model.Generate(q, greedy).ToResultAsync()).Usage.CachedTokens); // q's slot was kept for it
        Assert.Equal(0, (await model.Generate(p, greedy with { CachePrompt = false }).ToResultAsync()).Usage.CachedTokens);
    }
}

/// <summary>
/// Prompt caching through <c>anybit serve</c> (one slot, float32 cache): a second request sharing a long prefix
/// with the first answers what a fresh server answers and reports <c>usage.prompt_tokens_details.cached_tokens</c>.
/// </summary>
[Collection("Serial")]
public class KvPromptCacheServerTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");
    private const string Opening = "It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind";

    private static async Task<JsonElement> CompleteAsync(HttpClient http, string prompt, bool stream = false)
    {
        var body = new StringContent(JsonSerializer.Serialize(new { prompt, max_tokens = 20, temperature = 0, stream, stream_options = new { include_usage = true } }),
            Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("v1/completions", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        if (!stream) return await response.Content.ReadFromJsonAsync<JsonElement>();
        // The usage chunk comes last, before [DONE]; the text is the concatenation of the choices' text.
        var text = new StringBuilder();
        JsonElement usage = default;
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
            var chunk = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            if (chunk.GetProperty("choices").GetArrayLength() > 0) text.Append(chunk.GetProperty("choices")[0].GetProperty("text").GetString());
            if (chunk.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) usage = u.Clone();
        }
        return JsonSerializer.SerializeToElement(new { choices = new[] { new { text = text.ToString() } }, usage });
    }

    private static string Text(JsonElement completion) => completion.GetProperty("choices")[0].GetProperty("text").GetString()!;
    private static int Cached(JsonElement completion) => completion.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();

    private static async Task<int[]> TokenizeAsync(HttpClient http, string text)
    {
        using var response = await http.PostAsync("tokenize", new StringContent(JsonSerializer.Serialize(new { content = text }), Encoding.UTF8, "application/json"));
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }

    [Fact]
    public async Task A_prefix_shared_with_the_previous_request_is_reused_and_the_answer_equals_a_fresh_servers()
    {
        string second = Opening + " which swept up the streets (for it is in London that our scene lies)";
        using var server = new ServerProcess("-m", ModelPath, "--ctx", "256", "--parallel", "1");
        using var fresh = new ServerProcess("-m", ModelPath, "--ctx", "256", "--parallel", "1");
        using var http = server.Client();
        using var freshHttp = fresh.Client();

        var a = await CompleteAsync(http, Opening);
        Assert.Equal(0, Cached(a));
        var b = await CompleteAsync(http, second, stream: true);
        var expected = await CompleteAsync(freshHttp, second);
        int openingTokens = (await TokenizeAsync(http, Opening)).Length;
        Assert.True(Cached(b) >= openingTokens - 1, $"cached {Cached(b)} of the opening's {openingTokens} tokens");
        Assert.Equal(Cached(b), (await server.HealthAsync()).GetProperty("prompt_tokens_cached").GetInt32());
        Assert.Equal(0, Cached(expected));
        Assert.Equal(Text(expected), Text(b));

        // A different prompt: cached_tokens is the true common prefix with what the slot holds (BOS, here).
        string other = "Mr. Sherlock Holmes, who was usually very late in the mornings";
        var c = await CompleteAsync(http, other);
        int[] otherIds = await TokenizeAsync(http, other), secondIds = await TokenizeAsync(http, second);
        int common = 0;
        while (common < otherIds.Length - 1 && otherIds[common] == secondIds[common]) common++;
        Assert.Equal(common, Cached(c));
        Assert.Equal(Text(await CompleteAsync(freshHttp, other)), Text(c));

        await LanguageModelTests.WaitUntil(() => server.Stderr.Contains($"({Cached(b)} cached)"));
    }
}
