using AnyBit.Evaluation;
using AnyBit.Inference;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Text;

namespace AnyBit;

/// <summary>Options for <see cref="LanguageModel.Load"/>.</summary>
public sealed record LanguageModelOptions
{
    /// <summary>A separate tokenizer (llama2.c tokenizer.bin, or a tokenizer.json overriding the model's).</summary>
    public string? TokenizerPath { get; init; }

    /// <summary>Positions per sequence (prompt plus output). Default: the model's, at most 4096.</summary>
    public int? ContextSize { get; init; }

    /// <summary>
    /// Sequences generated at once, each with its own KV cache. Default 1, or as many as <see cref="KvBudgetBytes"/>
    /// holds; with a budget, this caps the number.
    /// </summary>
    public int? ParallelSequences { get; init; }

    /// <summary>
    /// Bytes the sequences' KV caches may take together: the number of sequences is this divided by one sequence's
    /// cache at <see cref="ContextSize"/> (<see cref="KvCacheOptions.SequencesWithin"/>), at most
    /// <see cref="ParallelSequences"/>. Null: no budget. Requests beyond the slots wait in the queue or are refused
    /// (<see cref="SchedulerBusyException"/>); the caches never grow past it.
    /// </summary>
    public long? KvBudgetBytes { get; init; }

    /// <summary>Requests that may wait for a free sequence before <see cref="SchedulerBusyException"/> (default 64).</summary>
    public int QueueLimit { get; init; } = 64;

    /// <summary>BitNet only: float activations instead of the as-trained int8 ones.</summary>
    public bool FloatReference { get; init; }

    /// <summary>Which kernels run quantized weights (default: the fast integer kernels).</summary>
    public Kernels.Quantized.KernelMode Kernels { get; init; } = AnyBit.Kernels.Quantized.KernelMode.Fast;

    /// <summary>How each sequence's KV cache stores keys and values (default float32; see <see cref="KvCacheOptions"/>).</summary>
    public KvCacheOptions KvCache { get; init; } = KvCacheOptions.Default;
}

/// <summary>
/// The library's front door: a loaded model (Hugging Face folder, GGUF or llama2.c file) that tokenizes, applies
/// its chat template, generates (streamed as <see cref="IAsyncEnumerable{T}"/>, cancellable, several requests at
/// once) and evaluates perplexity. <see cref="Quantize"/> converts models to any format of the registry.
/// Thread-safe: generations from many threads are scheduled onto the model's sequence slots.
/// </summary>
/// <example>
/// <code>
/// using var model = LanguageModel.Load("models/llama-q4_k_m.gguf");
/// await foreach (var chunk in model.GenerateAsync("Once upon a time", new GenerationOptions { MaxTokens = 64 }))
///     Console.Write(chunk.Text);
/// </code>
/// </example>
public sealed class LanguageModel : IDisposable
{
    private readonly GenerationScheduler _scheduler;
    private readonly int[] _chatStopIds;

    private LanguageModel(Transformer model, LanguageModelOptions options)
    {
        Model = model;
        ContextSize = options.ContextSize ?? Math.Min(model.Config.MaxPositions, 4096);
        KvCache = options.KvCache;
        KvBudgetBytes = options.KvBudgetBytes;
        int slots = options.ParallelSequences ?? 1;
        if (options.KvBudgetBytes is long budget)
        {
            KvCache.Validate(model.Config, ContextSize); // a cache that cannot hold the model's heads says so first
            int fits = KvCache.SequencesWithin(model.Config, ContextSize, budget);
            slots = options.ParallelSequences is int cap ? Math.Min(cap, fits) : fits;
            SequencesWithinBudget = fits;
        }
        _scheduler = new GenerationScheduler(model, slots, ContextSize, options.QueueLimit, options.KvCache);
        _chatStopIds = FindEndOfTurnTokens(model.Tokenizer);
    }

    /// <summary>Loads a model; throws <see cref="AnyBitException"/> naming the file and the problem when it cannot.</summary>
    public static LanguageModel Load(string path, LanguageModelOptions? options = null)
    {
        options ??= new LanguageModelOptions();
        var model = ModelLoader.Load(path, new LoadOptions { TokenizerPath = options.TokenizerPath, FloatReference = options.FloatReference, Kernels = options.Kernels });
        try
        {
            return new LanguageModel(model, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The underlying model (config, weights, tokenizer) for lower-level use.</summary>
    public Transformer Model { get; }

    /// <summary>The model's hyperparameters.</summary>
    public ModelConfig Config => Model.Config;

    /// <summary>The model's name: its file or folder name.</summary>
    public string Name => Path.GetFileName(Path.TrimEndingDirectorySeparator(Model.Source));

    /// <summary>The chat template (the model's own, or ChatML).</summary>
    public ChatTemplate ChatTemplate => Model.ChatTemplate;

    /// <summary>Positions per sequence.</summary>
    public int ContextSize { get; }

    /// <summary>How each sequence's KV cache stores keys and values.</summary>
    public KvCacheOptions KvCache { get; }

    /// <summary>The budget the sequences' KV caches were sized by, or null.</summary>
    public long? KvBudgetBytes { get; }

    /// <summary>Sequences the KV budget holds before <see cref="LanguageModelOptions.ParallelSequences"/> caps them; null without a budget.</summary>
    public int? SequencesWithinBudget { get; }

    /// <summary>The scheduler that runs generations (slots, queue, counters).</summary>
    public GenerationScheduler Scheduler => _scheduler;

    /// <summary>The tokenizer; throws when the model has none (llama2.c without tokenizer.bin).</summary>
    public ITokenizer Tokenizer => Model.Tokenizer ?? throw new AnyBitException($"{Model.Source}: the model has no tokenizer");

    /// <summary>Tokenizes text; with <paramref name="addSpecial"/> BOS/EOS are added as the tokenizer's rules say.</summary>
    public int[] Tokenize(string text, bool addSpecial = true) => Tokenizer.Encode(text, addSpecial);

    /// <summary>Decodes token ids to text.</summary>
    public string Detokenize(ReadOnlySpan<int> ids, bool skipSpecial = false)
    {
        foreach (int id in ids)
            if ((uint)id >= (uint)Tokenizer.VocabSize) throw new AnyBitException($"token id {id} is outside the vocabulary (0..{Tokenizer.VocabSize - 1})");
        return Tokenizer.Decode(ids, skipSpecial);
    }

    /// <summary>The prompt text a conversation becomes under the chat template.</summary>
    public string FormatChat(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true) => ChatTemplate.Apply(messages, addGenerationPrompt);

    /// <summary>
    /// The prompt ids of a conversation. As in transformers, the rendered text is tokenized without adding special
    /// tokens (templates write their own BOS); ChatML, which writes none, gets the tokenizer's BOS.
    /// </summary>
    public int[] EncodeChat(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true) =>
        Tokenize(FormatChat(messages, addGenerationPrompt), addSpecial: ChatTemplate.IsFallback);

    /// <summary>Options for a chat reply: the caller's, plus the template's end-of-turn tokens as stops.</summary>
    public GenerationOptions ChatOptions(GenerationOptions? options)
    {
        options ??= new GenerationOptions();
        return options with { StopTokenIds = [.. options.StopTokenIds, .. _chatStopIds] };
    }

    /// <summary>Queues a generation from prompt ids; see <see cref="GenerationScheduler.Submit"/>.</summary>
    public GenerationStream Generate(int[] promptIds, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        _scheduler.Submit(promptIds, options ?? new GenerationOptions(), cancellation);

    /// <summary>Streams the continuation of <paramref name="prompt"/>.</summary>
    public IAsyncEnumerable<GenerationChunk> GenerateAsync(string prompt, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        Generate(Tokenize(prompt), options, cancellation);

    /// <summary>The whole continuation of <paramref name="prompt"/>.</summary>
    public Task<GenerationResult> CompleteAsync(string prompt, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        Generate(Tokenize(prompt), options, cancellation).ToResultAsync(cancellation);

    /// <summary>Streams the assistant's reply to a conversation.</summary>
    public IAsyncEnumerable<GenerationChunk> ChatAsync(IReadOnlyList<ChatTurn> messages, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        Generate(EncodeChat(messages), ChatOptions(options), cancellation);

    /// <summary>The assistant's whole reply to a conversation.</summary>
    public Task<GenerationResult> ChatCompleteAsync(IReadOnlyList<ChatTurn> messages, GenerationOptions? options = null, CancellationToken cancellation = default) =>
        Generate(EncodeChat(messages), ChatOptions(options), cancellation).ToResultAsync(cancellation);

    /// <summary>Perplexity of <paramref name="text"/> (tokenized with BOS, EOS appended) in windows of <paramref name="windowSize"/>.</summary>
    public PerplexityResult EvaluatePerplexity(string text, int windowSize = 512, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellation = default)
    {
        var ids = Tokenize(text).ToList();
        if (Tokenizer.EosId is int eos) ids.Add(eos);
        if (ids.Count < 2) throw new AnyBitException("the text is too short to evaluate: it needs at least two tokens");
        return Perplexity.Evaluate(Model, ids.ToArray(), Math.Min(windowSize, Config.MaxPositions), progress, cancellation);
    }

    /// <summary>
    /// Quantizes the model at <paramref name="input"/> into a GGUF file at <paramref name="output"/> (written to a
    /// temporary file and renamed, so a failure or cancellation leaves nothing behind). Returns the plan that was
    /// written (formats per tensor, size, bits per weight).
    /// </summary>
    public static QuantPlan Quantize(string input, string output, QuantizeOptions options, Action<int, int, string>? progress = null, CancellationToken cancellation = default)
    {
        var (plan, source) = ModelQuantizer.Plan(input, options);
        using (source) ModelQuantizer.Write(plan, output, progress, cancellation);
        return plan;
    }

    /// <summary>Special tokens that end an assistant turn in common chat formats, where the vocabulary has them.</summary>
    private static int[] FindEndOfTurnTokens(ITokenizer? tokenizer)
    {
        if (tokenizer is null) return [];
        string[] markers = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<end_of_turn>"];
        var ids = new List<int>();
        for (int id = 0; id < tokenizer.VocabSize; id++)
            if (tokenizer.IsSpecial(id) && Array.IndexOf(markers, tokenizer.Piece(id)) >= 0) ids.Add(id);
        return ids.ToArray();
    }

    /// <summary>Stops the scheduler and frees the model.</summary>
    public void Dispose()
    {
        _scheduler.Dispose();
        Model.Dispose();
    }
}
