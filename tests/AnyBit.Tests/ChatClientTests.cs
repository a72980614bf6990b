using AnyBit.AI;
using AnyBit.Inference;
using AnyBit.Models;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AnyBit.Tests;

/// <summary>The IChatClient inside Microsoft.Extensions.AI pipelines, against the in-process model.</summary>
[Collection("Serial")]
public class ChatClientTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");
    private static readonly ChatMessage[] Conversation = [new(ChatRole.System, "You tell stories."), new(ChatRole.User, "Tell me about the sea.")];

    private sealed class ListLogger(List<string> lines) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (lines) lines.Add(formatter(state, exception));
        }
        public void Dispose() { }
    }

    [Fact]
    public async Task Pipeline_with_logging_and_distributed_cache_non_streaming_and_streaming()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256 });
        var logs = new List<string>();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(new ListLogger(logs)).SetMinimumLevel(LogLevel.Trace));
        IDistributedCache cache = new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions()));
        using IChatClient client = new ChatClientBuilder(new AnyBitChatClient(model))
            .UseDistributedCache(cache)
            .UseLogging(loggerFactory)
            .Build();
        var options = new ChatOptions { MaxOutputTokens = 12, Temperature = 0 };

        var expected = Generator.Greedy(model.Model, model.EncodeChat(Conversation.Select(m => new AnyBit.Text.ChatTurn(m.Role.Value, m.Text)).ToList()), 12);
        string expectedText = (await model.ChatCompleteAsync([new("system", "You tell stories."), new("user", "Tell me about the sea.")], new GenerationOptions { MaxTokens = 12 })).Text;
        long runsBefore = model.Scheduler.CompletedRequests;

        var response = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(expectedText, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal(model.EncodeChat(Conversation.Select(m => new AnyBit.Text.ChatTurn(m.Role.Value, m.Text)).ToList()).Length, response.Usage!.InputTokenCount);
        Assert.Equal(expected.Length, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.NotNull(response.FinishReason);
        Assert.Equal(runsBefore + 1, model.Scheduler.CompletedRequests);

        // Same request again: the cache answers, the model does not run.
        var cached = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(response.Text, cached.Text);
        Assert.Equal(runsBefore + 1, model.Scheduler.CompletedRequests);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 11, Temperature = 0 }))
            updates.Add(u);
        Assert.True(updates.Count > 1);
        var streamed = updates.ToChatResponse();
        Assert.Equal(expectedText.Length > 0 ? (await model.ChatCompleteAsync([new("system", "You tell stories."), new("user", "Tell me about the sea.")], new GenerationOptions { MaxTokens = 11 })).Text : "", streamed.Text);
        Assert.Equal(11, streamed.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, streamed.FinishReason);
        Assert.Contains(logs, l => l.Contains("GetResponseAsync", StringComparison.Ordinal) || l.Contains("invoked", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Options_map_to_sampling_and_stop_sequences()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256 });
        using IChatClient client = new AnyBitChatClient(model);
        var free = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 20 });
        Assert.True(free.Text.Length > 8, free.Text);
        string stop = free.Text.Substring(4, 3);
        var stopped = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 20, StopSequences = [stop] });
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);

        var seeded = new ChatOptions { MaxOutputTokens = 10, Temperature = 1.0f, TopP = 0.9f, TopK = 50, Seed = 123 };
        Assert.Equal((await client.GetResponseAsync(Conversation, seeded)).Text, (await client.GetResponseAsync(Conversation, seeded)).Text);
        await Assert.ThrowsAsync<AnyBitException>(() => client.GetResponseAsync(Conversation, new ChatOptions { TopP = 3 }));
        Assert.IsType<ChatClientMetadata>(client.GetService(typeof(ChatClientMetadata)));
        Assert.Same(model, client.GetService(typeof(LanguageModel)));
    }
}
