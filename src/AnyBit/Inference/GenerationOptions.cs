using AnyBit.Models;

namespace AnyBit.Inference;

/// <summary>What to generate: how many tokens, how to sample them, and when to stop.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens to generate (the context size also bounds it). Default 256.</summary>
    public int MaxTokens { get; init; } = 256;

    /// <summary>How each token is chosen; the default is greedy.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Texts that end generation when they appear; they are not part of the output.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Stop at the model's end-of-sequence tokens (default true).</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    /// <summary>More token ids that end generation like end-of-sequence (chat end-of-turn markers).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>
    /// Reuse a scheduler slot's cached keys and values for the prompt's prefix that slot last saw (default true;
    /// llama.cpp server's <c>cache_prompt</c>). Reuse is exact, so this changes speed, not output.
    /// </summary>
    public bool CachePrompt { get; init; } = true;

    /// <summary>Throws an <see cref="AnyBitException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (MaxTokens < 0) throw new AnyBitException($"max tokens {MaxTokens} must be ≥ 0");
        Sampling.Validate();
        foreach (var s in StopSequences)
            if (string.IsNullOrEmpty(s)) throw new AnyBitException("a stop sequence is empty");
    }
}

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>An end-of-sequence token or a stop sequence.</summary>
    Stop,
    /// <summary>The token limit or the context size was reached.</summary>
    Length,
}

/// <summary>Token counts of one generation, as OpenAI's usage object reports them.</summary>
/// <param name="PromptTokens">tokens in the prompt</param>
/// <param name="CompletionTokens">tokens generated (an end-of-sequence token included)</param>
public sealed record GenerationUsage(int PromptTokens, int CompletionTokens)
{
    /// <summary>Prompt tokens whose keys and values were reused from a cache rather than processed (OpenAI's <c>prompt_tokens_details.cached_tokens</c>).</summary>
    public int CachedTokens { get; init; }

    /// <summary>Prompt plus completion tokens.</summary>
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// A piece of streamed output: the text the new token completes (possibly empty while a multi-byte character or
/// a possible stop sequence is pending) and its id. The last chunk has <see cref="FinishReason"/> and
/// <see cref="Usage"/> set.
/// </summary>
/// <param name="Text">text completed by this token (may be empty)</param>
/// <param name="TokenId">the token generated, or null for a chunk that carries no token</param>
public sealed record GenerationChunk(string Text, int? TokenId)
{
    /// <summary>Set on the last chunk only.</summary>
    public FinishReason? FinishReason { get; init; }

    /// <summary>Set on the last chunk only.</summary>
    public GenerationUsage? Usage { get; init; }

    /// <summary>Set on the last chunk only.</summary>
    public GenerationTimings? Timings { get; init; }
}

/// <summary>A finished generation.</summary>
/// <param name="Text">the generated text (without stop sequences)</param>
/// <param name="TokenIds">the generated tokens</param>
/// <param name="FinishReason">why it ended</param>
/// <param name="Usage">token counts</param>
/// <param name="Timings">prompt and generation speed</param>
public sealed record GenerationResult(string Text, IReadOnlyList<int> TokenIds, FinishReason FinishReason, GenerationUsage Usage, GenerationTimings Timings);
