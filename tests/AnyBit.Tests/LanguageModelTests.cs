using AnyBit.Inference;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>The public library API: generation through the scheduler against the plain generator, stops, cancellation.</summary>
[Collection("Serial")]
public class LanguageModelTests
{
    private static readonly string ModelPath = Shared.Data("models", "gutenberg-llama");
    private const string Prompt = "It was a dark and stormy night, and";

    [Fact]
    public async Task Greedy_stream_matches_the_reference_generator_token_for_token()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256 });
        int[] prompt = model.Tokenize(Prompt);
        int[] expected = Generator.Greedy(model.Model, prompt, 24);

        var ids = new List<int>();
        var text = new System.Text.StringBuilder();
        GenerationChunk? last = null;
        await foreach (var chunk in model.GenerateAsync(Prompt, new GenerationOptions { MaxTokens = 24 }))
        {
            if (chunk.TokenId is int id) ids.Add(id);
            text.Append(chunk.Text);
            last = chunk;
        }
        Assert.Equal(expected, ids);
        string full = model.Detokenize([.. prompt, .. expected], skipSpecial: true);
        Assert.Equal(full[model.Detokenize(prompt, skipSpecial: true).Length..], text.ToString());
        Assert.Equal(FinishReason.Length, last!.FinishReason);
        Assert.Equal(new GenerationUsage(prompt.Length, 24), last.Usage);
    }

    [Fact]
    public async Task Stop_sequence_cuts_the_text_before_it_even_across_tokens()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256 });
        var free = await model.CompleteAsync(Prompt, new GenerationOptions { MaxTokens = 40 });
        Assert.True(free.Text.Length > 20, free.Text);
        // A stop string starting inside one token and ending in a later one.
        string stop = free.Text.Substring(free.Text.Length / 2, 6);
        var stopped = await model.CompleteAsync(Prompt, new GenerationOptions { MaxTokens = 40, StopSequences = [stop] });
        Assert.Equal(FinishReason.Stop, stopped.FinishReason);
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.True(stopped.Usage.CompletionTokens < 40);
    }

    [Fact]
    public async Task Concurrent_requests_on_two_slots_give_the_sequential_results()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 128, ParallelSequences = 2 });
        string[] prompts = ["The old man", "She opened the door", "In the morning", "Holmes said"];
        var expected = prompts.Select(p => Generator.Greedy(model.Model, model.Tokenize(p), 12)).ToArray();
        var results = await Task.WhenAll(prompts.Select(p => model.CompleteAsync(p, new GenerationOptions { MaxTokens = 12 })));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], results[i].TokenIds);
        Assert.Equal(0, model.Scheduler.ActiveSequences);
    }

    [Fact]
    public async Task Seeded_sampling_is_reproducible()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 128 });
        var o = new GenerationOptions { MaxTokens = 16, Sampling = new SamplingOptions { Temperature = 0.9f, TopK = 40, Seed = 7 } };
        var a = await model.CompleteAsync(Prompt, o);
        var b = await model.CompleteAsync(Prompt, o);
        Assert.Equal(a.TokenIds, b.TokenIds);
    }

    [Fact]
    public async Task Cancellation_ends_the_stream_and_frees_the_slot()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 1024 });
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var chunk in model.GenerateAsync(Prompt, new GenerationOptions { MaxTokens = 1000, StopAtEndOfSequence = false }, cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        Assert.InRange(seen, 3, 10);
        await WaitUntil(() => model.Scheduler.ActiveSequences == 0 && model.Scheduler.CancelledRequests == 1);
        // The slot serves the next request.
        var next = await model.CompleteAsync(Prompt, new GenerationOptions { MaxTokens = 4 });
        Assert.Equal(4, next.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Leaving_the_loop_early_cancels_the_generation()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 1024 });
        await foreach (var chunk in model.GenerateAsync(Prompt, new GenerationOptions { MaxTokens = 1000, StopAtEndOfSequence = false }))
            break;
        await WaitUntil(() => model.Scheduler.ActiveSequences == 0 && model.Scheduler.CancelledRequests == 1);
    }

    [Fact]
    public void Bad_requests_fail_before_queueing()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 16, QueueLimit = 0 });
        var e = Assert.Throws<AnyBitException>(() => model.Generate(Enumerable.Repeat(5, 16).ToArray()));
        Assert.Contains("context holds 16", e.Message);
        Assert.Throws<AnyBitException>(() => model.Generate([1], new GenerationOptions { MaxTokens = -1 }));
        Assert.Throws<AnyBitException>(() => model.Generate([model.Config.VocabSize]));
        Assert.Throws<AnyBitException>(() => model.Generate([1], new GenerationOptions { Sampling = new SamplingOptions { TopP = 2 } }));
        Assert.Throws<AnyBitException>(() => model.Detokenize([-1]));
    }

    [Fact]
    public async Task A_full_queue_refuses_with_SchedulerBusy()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256, QueueLimit = 1 });
        var o = new GenerationOptions { MaxTokens = 200, StopAtEndOfSequence = false };
        using var running = model.Generate(model.Tokenize(Prompt), o);
        await WaitUntil(() => model.Scheduler.ActiveSequences == 1);
        var waiting = model.Generate(model.Tokenize(Prompt), o);
        Assert.Throws<SchedulerBusyException>(() => model.Generate(model.Tokenize(Prompt), o));
        // A waiting request that is abandoned leaves the queue at once, while the slot is still busy.
        waiting.Dispose();
        Assert.Equal(0, model.Scheduler.QueuedRequests);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { await foreach (var _ in waiting) { } });
        using var next = model.Generate(model.Tokenize(Prompt), o);
        Assert.Equal(1, model.Scheduler.QueuedRequests);
        Assert.Equal(1, model.Scheduler.ActiveSequences);
    }

    [Fact]
    public async Task Chat_uses_ChatML_when_the_model_has_no_template()
    {
        using var model = LanguageModel.Load(ModelPath, new LanguageModelOptions { ContextSize = 256 });
        Assert.True(model.ChatTemplate.IsFallback);
        ChatTurn[] chat = [new("user", "Who are you?")];
        Assert.Equal("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n", model.FormatChat(chat));
        var reply = await model.ChatCompleteAsync(chat, new GenerationOptions { MaxTokens = 8 });
        Assert.Equal(Generator.Greedy(model.Model, model.EncodeChat(chat), 8), reply.TokenIds);
    }

    [Fact]
    public void A_template_in_tokenizer_config_is_loaded_and_written_to_GGUF_by_quantize()
    {
        string dir = Shared.TempDir();
        try
        {
            foreach (var f in Directory.GetFiles(Shared.Fixture("models", "qwen2-bpe"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            string template = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ChatTemplates", "qwen2.jinja"));
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), template);
            using (var model = LanguageModel.Load(dir))
            {
                Assert.False(model.ChatTemplate.IsFallback);
                Assert.StartsWith("<|im_start|>system\nYou are a helpful assistant.", model.FormatChat([new("user", "x")]));
            }
            string gguf = Path.Combine(dir, "out.gguf");
            LanguageModel.Quantize(dir, gguf, new AnyBit.Quantization.QuantizeOptions { Format = "q8_0" });
            using var fromGguf = LanguageModel.Load(gguf);
            Assert.Equal(template, fromGguf.ChatTemplate.Source);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(new[] { "ab", "c", "d" }, "xy", "abcd")]
    [InlineData(new[] { "hel", "lo X", "YZ" }, "X", "hello ")]
    [InlineData(new[] { "a<", "/s", ">b" }, "</s>", "a")]
    [InlineData(new[] { "a<", "x" }, "</s>", "a<x")]
    [InlineData(new[] { "END" }, "END", "")]
    public void StopSequenceMatcher_holds_back_only_possible_prefixes(string[] pieces, string stop, string expected)
    {
        var m = new StopSequenceMatcher([stop]);
        string output = string.Concat(pieces.Select(m.Push)) + m.Flush();
        Assert.Equal(expected, output);
    }

    internal static async Task WaitUntil(Func<bool> condition, int timeoutMs = 20000)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.ElapsedMilliseconds > timeoutMs) throw new TimeoutException("condition not reached");
            await Task.Delay(10);
        }
    }
}

/// <summary><c>anybit run --chat</c> keeps the conversation and streams the same replies as the library.</summary>
[Collection("Serial")]
public class ChatCommandTests
{
    [Fact]
    public async Task Two_turns_match_the_library_replies()
    {
        string modelPath = Shared.Data("models", "gutenberg-llama");
        var r = CliRunner.RunWithInput("Hello there\nTell me more\n/exit\n", "run", "-m", modelPath, "--chat", "--temperature", "0", "-n", "12", "--system", "Be brief.");
        Assert.True(r.ExitCode == 0, r.Stderr);

        using var model = LanguageModel.Load(modelPath);
        var o = new GenerationOptions { MaxTokens = 12 };
        var turns = new List<ChatTurn> { new("system", "Be brief."), new("user", "Hello there") };
        string first = (await model.ChatCompleteAsync(turns, o)).Text;
        turns.Add(new("assistant", first));
        turns.Add(new("user", "Tell me more"));
        string second = (await model.ChatCompleteAsync(turns, o)).Text;
        Assert.Equal(first + "\n" + second + "\n", r.Stdout);
    }
}
