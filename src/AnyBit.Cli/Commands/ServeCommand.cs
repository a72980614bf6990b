using System.CommandLine;
using AnyBit.Server;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit serve</c>: the OpenAI-compatible HTTP server.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 = any free port; the address is printed)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /health" };
        var parallel = new Option<int?>("--parallel", "-np") { Description = "Sequences generated at once, each with its own KV cache (default 4; with --kv-budget, as many as the budget holds, at most this)" };
        var kvBudget = new Option<string?>("--kv-budget") { Description = "Memory for all sequences' KV caches (8GB, 512MiB, bytes): sets the number of sequences from the cache types and --ctx; requests beyond them wait in the queue or get 503" };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context size per sequence (default: the model's, at most 4096)" };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot before 503", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for", DefaultValueFactory = _ => 4096 };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body", DefaultValueFactory = _ => 4L << 20 };
        var alias = new Option<string?>("--alias") { Description = "Model name reported to clients (default: the file name)" };
        var floatRef = CommonOptions.FloatReference();
        var kernelsOption = CommonOptions.Kernels();
        var kvCache = new CommonOptions.KvCache();

        var cmd = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API")
        {
            model, tokenizer, host, port, apiKey, parallel, kvBudget, ctx, queue, maxTokens, maxBody, alias, floatRef, kernelsOption,
        };
        kvCache.AddTo(cmd);
        cmd.SetAction(async (parse, cancellation) =>
        {
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey),
                MaxTokensLimit = parse.GetValue(maxTokens),
                MaxBodyBytes = parse.GetValue(maxBody),
                ModelAlias = parse.GetValue(alias),
            };
            if (options.MaxTokensLimit < 1) throw new AnyBitException($"--max-tokens-limit {options.MaxTokensLimit} must be ≥ 1");
            if (options.MaxBodyBytes < 1024) throw new AnyBitException($"--max-body-bytes {options.MaxBodyBytes} must be ≥ 1024");
            if (options.Port is < 0 or > 65535) throw new AnyBitException($"--port {options.Port} must be between 0 and 65535");
            long? budget = parse.GetValue(kvBudget) is string b ? CommonOptions.ParseSize(b, "--kv-budget") : null;
            int? parallelCap = parse.GetValue(parallel);
            if (parallelCap < 1) throw new AnyBitException($"--parallel {parallelCap} must be ≥ 1");
            var cache = kvCache.Parse(parse); // before the model loads: a bad cache type fails at once
            using var lm = LanguageModel.Load(parse.GetValue(model)!, new LanguageModelOptions
            {
                TokenizerPath = parse.GetValue(tokenizer),
                ContextSize = parse.GetValue(ctx),
                ParallelSequences = budget is null ? parallelCap ?? 4 : parallelCap,
                KvBudgetBytes = budget,
                QueueLimit = parse.GetValue(queue),
                FloatReference = parse.GetValue(floatRef),
                Kernels = CommonOptions.ParseKernels(parse.GetValue(kernelsOption)),
                KvCache = cache,
            });
            _ = lm.Tokenizer; // a server needs text: fail now, not on the first request
            await using var app = OpenAiServer.Build(lm, options);
            await app.StartAsync(cancellation);
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            foreach (var a in addresses) Console.Out.WriteLine($"listening on {a}");
            Console.Out.Flush();
            Console.Error.WriteLine($"[{lm.Name}: {lm.Scheduler.SlotCount} slots × {lm.ContextSize} positions, queue {lm.Scheduler.QueueLimit}, chat template: {(lm.ChatTemplate.IsFallback ? "ChatML (the model has none)" : "the model's")}]");
            Console.Error.WriteLine($"[{CommonOptions.DescribeKvCache(lm.KvCache, lm.Config, lm.ContextSize)}]");
            if (lm.KvBudgetBytes is long kvBytes)
            {
                long perSequence = lm.KvCache.Memory(lm.Config, lm.ContextSize).BytesPerSequence;
                int slots = lm.Scheduler.SlotCount;
                Console.Error.WriteLine($"[--kv-budget {AnyBit.Inference.KvCacheOptions.FormatBytes(kvBytes)}: {slots} slot{(slots == 1 ? "" : "s")} × "
                    + $"{AnyBit.Inference.KvCacheOptions.FormatBytes(perSequence)} per sequence of {lm.ContextSize} positions ({lm.KvCache}) = "
                    + $"{AnyBit.Inference.KvCacheOptions.FormatBytes(slots * perSequence)}"
                    + (lm.SequencesWithinBudget > slots ? $"; the budget holds {lm.SequencesWithinBudget}, --parallel caps them]"
                        : parallelCap > slots ? $"; --parallel {parallelCap} does not fit]" : "]"));
            }
            if (options.ApiKey is null && options.Host is not ("127.0.0.1" or "localhost" or "::1"))
                Console.Error.WriteLine($"warning: serving on {options.Host} without --api-key: anyone who can reach this address can use the model");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellation);
            }
            catch (OperationCanceledException)
            {
            }
            await app.StopAsync(CancellationToken.None);
            return 0;
        });
        return cmd;
    }
}
