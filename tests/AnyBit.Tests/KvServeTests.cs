using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

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
