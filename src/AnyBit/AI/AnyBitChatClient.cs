using System.Runtime.CompilerServices;
using AnyBit.Inference;
using AnyBit.Models;
using AnyBit.Text;
using Microsoft.Extensions.AI;

namespace AnyBit.AI;

/// <summary>
/// <see cref="IChatClient"/> over a local <see cref="LanguageModel"/>, so AnyBit drops into Microsoft.Extensions.AI
/// pipelines (<c>ChatClientBuilder</c> with logging, caching, telemetry...). Options map as follows:
/// Temperature (unset = greedy), TopP, TopK, MaxOutputTokens, StopSequences, Seed; AdditionalProperties may add
/// <c>min_p</c> and <c>repetition_penalty</c>. Usage (input, output, total tokens) is reported on every response.
/// </summary>
public sealed class AnyBitChatClient : IChatClient
{
    private readonly LanguageModel _model;
    private readonly bool _ownsModel;
    private readonly ChatClientMetadata _metadata;

    /// <param name="model">the model to chat with</param>
    /// <param name="ownsModel">dispose the model with the client</param>
    public AnyBitChatClient(LanguageModel model, bool ownsModel = false)
    {
        _model = model;
        _ownsModel = ownsModel;
        _metadata = new ChatClientMetadata("anybit", null, model.Name);
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await _model.ChatCompleteAsync(ToTurns(messages), ToGenerationOptions(options), cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text))
        {
            ResponseId = NewId(),
            ModelId = _model.Name,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = ToFinishReason(result.FinishReason),
            Usage = ToUsage(result.Usage),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = NewId();
        var created = DateTimeOffset.UtcNow;
        await foreach (var chunk in _model.ChatAsync(ToTurns(messages), ToGenerationOptions(options), cancellationToken).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            var update = new ChatResponseUpdate(ChatRole.Assistant, chunk.Text)
            {
                ResponseId = responseId,
                MessageId = responseId,
                ModelId = _model.Name,
                CreatedAt = created,
            };
            if (chunk.FinishReason is FinishReason reason)
            {
                update.FinishReason = ToFinishReason(reason);
                update.Contents.Add(new UsageContent(ToUsage(chunk.Usage!)));
            }
            yield return update;
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        return null;
    }

    /// <summary>Maps Microsoft.Extensions.AI options to AnyBit's; out-of-range values throw <see cref="AnyBitException"/>.</summary>
    public static GenerationOptions ToGenerationOptions(ChatOptions? options)
    {
        if (options is null) return new GenerationOptions();
        var sampling = new SamplingOptions
        {
            Temperature = options.Temperature ?? 0f,
            TopP = options.TopP ?? 1f,
            TopK = options.TopK ?? 0,
            Seed = options.Seed is long seed ? unchecked((ulong)seed) : null,
            MinP = options.AdditionalProperties?.TryGetValue("min_p", out float minP) == true ? minP : 0f,
            RepetitionPenalty = options.AdditionalProperties?.TryGetValue("repetition_penalty", out float penalty) == true ? penalty : 1f,
        };
        var generation = new GenerationOptions
        {
            MaxTokens = options.MaxOutputTokens ?? new GenerationOptions().MaxTokens,
            Sampling = sampling,
            StopSequences = options.StopSequences?.ToArray() ?? [],
        };
        generation.Validate();
        return generation;
    }

    private static List<ChatTurn> ToTurns(IEnumerable<ChatMessage> messages) =>
        messages.Select(m => new ChatTurn(m.Role.Value, m.Text)).ToList();

    private static ChatFinishReason ToFinishReason(FinishReason reason) =>
        reason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails ToUsage(GenerationUsage usage) => new()
    {
        InputTokenCount = usage.PromptTokens,
        OutputTokenCount = usage.CompletionTokens,
        TotalTokenCount = usage.TotalTokens,
        CachedInputTokenCount = usage.CachedTokens,
    };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");

    /// <summary>Disposes the model when the client owns it.</summary>
    public void Dispose()
    {
        if (_ownsModel) _model.Dispose();
    }
}
