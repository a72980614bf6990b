using System.CommandLine;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit run</c>: generate text from a prompt, streamed as it is produced.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text" };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Maximum number of new tokens", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Top-k sampling (0 = off)", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "Top-p (nucleus) sampling (1 = off)", DefaultValueFactory = _ => 0.95f };
        var minP = new Option<float>("--min-p") { Description = "Min-p sampling (0 = off)", DefaultValueFactory = _ => 0.05f };
        var repeatPenalty = new Option<float>("--repeat-penalty") { Description = "Repetition penalty over the last 64 tokens (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Random seed for reproducible sampling" };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context size (default: the model's, at most 4096)" };
        var json = CommonOptions.Json();
        var floatRef = CommonOptions.FloatReference();
        var kernelsOption = CommonOptions.Kernels();
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Keep generating after an end-of-sequence token" };
        var chat = new Option<bool>("--chat") { Description = "Interactive chat in the terminal, through the model's chat template (/reset, /exit)" };
        var system = new Option<string?>("--system") { Description = "System message for --chat" };
        var kvCache = new CommonOptions.KvCache();
        var draft = new Option<string?>("--draft")
        {
            Description = "Speculative decoding: 'ngram' drafts by prompt lookup (the tokens that followed the last n tokens' earlier occurrence), verified in one batch; greedy output unchanged, sampled output from the same distribution",
        };
        draft.AcceptOnlyFromAmong("ngram");
        var draftMax = new Option<int>("--draft-max") { Description = "Most tokens drafted per step", DefaultValueFactory = _ => 10 };
        var draftNgram = new Option<int>("--draft-ngram") { Description = "Longest suffix prompt lookup matches (down to 1)", DefaultValueFactory = _ => 3 };

        var cmd = new Command("run", "Generate text from a prompt")
        {
            model, tokenizer, prompt, promptIds, maxTokens, temperature, topK, topP, minP, repeatPenalty, seed, ctx, json, floatRef, kernelsOption, ignoreEos, chat, system, draft, draftMax, draftNgram,
        };
        kvCache.AddTo(cmd);
        cmd.SetAction((parse, cancellation) =>
        {
            string? text = parse.GetValue(prompt), idsText = parse.GetValue(promptIds);
            var cache = kvCache.Parse(parse);
            if (parse.GetValue(chat)) return ChatLoop.RunAsync(parse.GetValue(model)!, parse.GetValue(tokenizer), parse.GetValue(ctx), parse.GetValue(system),
                new AnyBit.Inference.GenerationOptions { MaxTokens = parse.GetValue(maxTokens), Sampling = ReadSampling(parse), StopAtEndOfSequence = !parse.GetValue(ignoreEos) },
                parse.GetValue(floatRef), CommonOptions.ParseKernels(parse.GetValue(kernelsOption)), cache, cancellation);
            if ((text is null) == (idsText is null)) throw new AnyBitException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
            int n = parse.GetValue(maxTokens);
            if (n < 0) throw new AnyBitException($"--max-tokens {n} must be ≥ 0");
            var sampling = ReadSampling(parse);
            AnyBit.Inference.PromptLookup? lookup = null;
            if (parse.GetValue(draft) is not null)
            {
                lookup = new AnyBit.Inference.PromptLookup { MaxDraft = parse.GetValue(draftMax), MaxNgram = parse.GetValue(draftNgram) };
                lookup.Validate();
            }

            using var m = ModelLoader.Load(parse.GetValue(model)!, new LoadOptions { TokenizerPath = parse.GetValue(tokenizer), FloatReference = parse.GetValue(floatRef), Kernels = CommonOptions.ParseKernels(parse.GetValue(kernelsOption)) });
            int[] ids = text is not null ? CommonOptions.RequireTokenizer(m).Encode(text) : CommonOptions.ParseIds(idsText!, m.Config.VocabSize);
            if (ids.Length == 0) throw new AnyBitException("the prompt encodes to no tokens (empty text and a tokenizer that adds no BOS); give some text");
            int context = parse.GetValue(ctx) ?? Math.Min(m.Config.MaxPositions, 4096);
            if (context <= 0) throw new AnyBitException($"--ctx {context} must be positive");
            if (context > m.Config.MaxPositions) throw new AnyBitException($"--ctx {context} exceeds the model's {m.Config.MaxPositions} positions");
            if (ids.Length >= context) throw new AnyBitException($"the prompt has {ids.Length} tokens; the context holds {context} (raise --ctx or shorten the prompt)");

            using var session = m.CreateSession(context, cache: cache);
            var sampler = new Sampler(sampling, m.Config.VocabSize);
            var generated = new List<int>();
            GenerationTimings? timings = null;
            bool asJson = parse.GetValue(json);
            var streamer = m.Tokenizer is null ? null : new StreamingDecoder(m.Tokenizer, skipSpecial: true);
            // The prompt goes through the decoder first, so the continuation is decoded in context (no dummy-prefix
            // space stripped from the first new token) and echoed after the prompt as llama.cpp does.
            string promptEcho = "";
            if (streamer is not null)
            {
                var sb = new System.Text.StringBuilder();
                foreach (int id in ids) sb.Append(streamer.Append(id));
                promptEcho = sb.ToString();
            }
            if (!asJson && promptEcho.Length > 0) Console.Out.Write(promptEcho);
            foreach (int id in Generator.Generate(session, ids, n, sampler, !parse.GetValue(ignoreEos), cancellation, t => timings = t, lookup))
            {
                generated.Add(id);
                if (asJson) continue;
                string piece = streamer is null ? $"{id} " : streamer.Append(id);
                if (piece.Length > 0)
                {
                    Console.Out.Write(piece);
                    Console.Out.Flush();
                }
            }
            string textOut = "";
            if (m.Tokenizer is not null)
            {
                string full = m.Tokenizer.Decode(ids.Concat(generated).ToArray(), skipSpecial: true);
                string head = m.Tokenizer.Decode(ids, skipSpecial: true);
                textOut = full.StartsWith(head, StringComparison.Ordinal) ? full[head.Length..] : m.Tokenizer.Decode(generated.ToArray(), skipSpecial: true);
            }
            if (asJson)
            {
                CommonOptions.WriteJson(new
                {
                    PromptIds = ids,
                    GeneratedIds = generated,
                    Text = textOut,
                    Timings = new
                    {
                        PromptTokens = timings!.PromptTokens,
                        PromptMs = timings.PromptSeconds * 1000,
                        PromptTokensPerSecond = timings.PromptTokensPerSecond,
                        GeneratedTokens = timings.GeneratedTokens,
                        GenerationMs = timings.GenerationSeconds * 1000,
                        GenerationTokensPerSecond = timings.GenerationTokensPerSecond,
                        DraftTokens = timings.DraftTokens,
                        AcceptedTokens = timings.AcceptedTokens,
                    },
                });
            }
            else
            {
                if (streamer is not null) Console.Out.Write(streamer.Flush());
                Console.Out.WriteLine();
                Console.Error.WriteLine($"[prompt {timings!.PromptTokens} tokens, {timings.PromptTokensPerSecond:F1} t/s; generated {timings.GeneratedTokens} tokens, {timings.GenerationTokensPerSecond:F1} t/s{(lookup is null ? "" : $"; drafted {timings.DraftTokens}, accepted {timings.AcceptedTokens}")}]");
            }
            return Task.FromResult(0);
        });
        return cmd;

        SamplingOptions ReadSampling(ParseResult parse)
        {
            var sampling = new SamplingOptions
            {
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                MinP = parse.GetValue(minP),
                RepetitionPenalty = parse.GetValue(repeatPenalty),
                Seed = parse.GetValue(seed),
            };
            sampling.Validate();
            return sampling;
        }
    }
}
