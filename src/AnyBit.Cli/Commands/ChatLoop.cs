using AnyBit.Inference;
using AnyBit.Text;

namespace AnyBit.Cli.Commands;

/// <summary>
/// <c>anybit run --chat</c>: reads user turns from stdin, streams the assistant's replies, keeps the conversation.
/// When the conversation outgrows the context, the oldest turns (after any system message) are dropped.
/// </summary>
internal static class ChatLoop
{
    public static async Task<int> RunAsync(string modelPath, string? tokenizerPath, int? contextSize, string? systemMessage,
        GenerationOptions options, bool floatReference, AnyBit.Kernels.Quantized.KernelMode kernels, KvCacheOptions cache, CancellationToken cancellation)
    {
        if (options.MaxTokens < 1) throw new AnyBitException($"--max-tokens {options.MaxTokens} must be ≥ 1 for --chat");
        using var model = LanguageModel.Load(modelPath, new LanguageModelOptions { TokenizerPath = tokenizerPath, ContextSize = contextSize, FloatReference = floatReference, Kernels = kernels, KvCache = cache });
        _ = model.Tokenizer;
        if (options.MaxTokens >= model.ContextSize) throw new AnyBitException($"--max-tokens {options.MaxTokens} leaves no room for the conversation in a context of {model.ContextSize}");
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(systemMessage)) turns.Add(new ChatTurn("system", systemMessage));
        bool interactive = !Console.IsInputRedirected;
        Console.Error.WriteLine($"[chat with {model.Name}; template: {(model.ChatTemplate.IsFallback ? "ChatML (the model has none)" : "the model's")}; /reset clears, /exit or end of input quits]");
        while (!cancellation.IsCancellationRequested)
        {
            if (interactive) Console.Out.Write("> ");
            string? line = await Console.In.ReadLineAsync(cancellation);
            if (line is null || line.Trim() == "/exit") break;
            if (line.Trim() == "/reset")
            {
                turns.RemoveAll(t => t.Role != "system");
                continue;
            }
            if (line.Length == 0) continue;
            turns.Add(new ChatTurn("user", line));
            int[] prompt = FitToContext(model, turns, options.MaxTokens);
            var reply = new System.Text.StringBuilder();
            await foreach (var chunk in model.Generate(prompt, model.ChatOptions(options), cancellation))
            {
                reply.Append(chunk.Text);
                Console.Out.Write(chunk.Text);
                Console.Out.Flush();
            }
            Console.Out.WriteLine();
            turns.Add(new ChatTurn("assistant", reply.ToString()));
        }
        return 0;
    }

    private static int[] FitToContext(LanguageModel model, List<ChatTurn> turns, int maxTokens)
    {
        while (true)
        {
            int[] ids = model.EncodeChat(turns);
            if (ids.Length + maxTokens <= model.ContextSize) return ids;
            int oldest = turns.FindIndex(t => t.Role != "system");
            if (oldest < 0 || oldest == turns.Count - 1)
                throw new AnyBitException($"the message is {ids.Length} tokens; with --max-tokens {maxTokens} it does not fit a context of {model.ContextSize}");
            turns.RemoveAt(oldest);
        }
    }
}
