using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AnyBit.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AnyBit.Tests;

/// <summary>The server in-process, with one slot and no queue: a second request is refused with 503 and Retry-After.</summary>
[Collection("Serial")]
public class ServerBusyTests
{
    [Fact]
    public async Task A_full_server_answers_503_with_retry_after_and_recovers()
    {
        using var model = LanguageModel.Load(Shared.Data("models", "gutenberg-llama"), new LanguageModelOptions { ContextSize = 512, ParallelSequences = 1, QueueLimit = 0 });
        await using var app = OpenAiServer.Build(model, new ServerOptions { Port = 0 });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient { BaseAddress = new Uri(address + "/") };
        StringContent Body(int max, bool stream) => new(JsonSerializer.Serialize(new { prompt = "Once upon a time", max_tokens = max, temperature = 0, stream, ignore_eos = true }), Encoding.UTF8, "application/json");

        using var longRequest = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Body(400, true) };
        using var running = await http.SendAsync(longRequest, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, running.StatusCode);
        await LanguageModelTests.WaitUntil(() => model.Scheduler.ActiveSequences == 1);

        using (var busy = await http.PostAsync("v1/completions", Body(4, false)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), busy.Headers.RetryAfter!.Delta);
            Assert.Equal("server_busy", (await busy.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("type").GetString());
        }
        running.Dispose(); // hang up: the slot is freed
        await LanguageModelTests.WaitUntil(() => model.Scheduler.ActiveSequences == 0);
        using var ok = await http.PostAsync("v1/completions", Body(4, false));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        await app.StopAsync();
    }
}
