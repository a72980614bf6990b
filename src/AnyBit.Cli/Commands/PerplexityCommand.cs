using System.CommandLine;
using AnyBit.Evaluation;
using AnyBit.Models;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit perplexity</c>: perplexity of a text file under the model, with full non-overlapping windows.</summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var text = new Option<string>("--text", "-f") { Description = "Plain-text file to evaluate", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length (tokens predicted per window)", DefaultValueFactory = _ => 512 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Use only the first N tokens of the text" };
        var json = CommonOptions.Json();
        var floatRef = CommonOptions.FloatReference();
        var kernelsOption = CommonOptions.Kernels();
        var windows = new Option<string>("--windows") { Description = "full: windows of ctx+1 scoring all ctx predictions (default); llama.cpp: llama-perplexity's chunks scoring their second half", DefaultValueFactory = _ => "full" };
        var klBase = new Option<string?>("--kl-base") { Description = "Base model: also report KL divergence, top-1 agreement and Δp against it on the same windows" };
        var kvCache = new CommonOptions.KvCache();
        var sweep = new Option<string?>("--cache-sweep")
        {
            Description = "Evaluate several KV caches on the same windows, the base model run once per window: "
                + "a list of KEY[/VALUE][@WINDOW] separated by commas or spaces (e.g. \"q8_0/q4_0, q4_0:rot, int2:g32:min:tokens/int2:g32:min@128\"); one table row each",
        };
        var cmd = new Command("perplexity", "Measure perplexity (and KL divergence against a base model) on a text file") { model, tokenizer, text, ctx, maxTokens, json, floatRef, windows, klBase, kernelsOption, sweep };
        kvCache.AddTo(cmd);
        cmd.SetAction((parse, cancellation) =>
        {
            int c = parse.GetValue(ctx);
            if (c <= 0) throw new AnyBitException($"--ctx {c} must be positive");
            int? max = parse.GetValue(maxTokens);
            if (max is <= 0) throw new AnyBitException($"--max-tokens {max} must be positive");
            var method = parse.GetValue(windows)!.ToLowerInvariant() switch
            {
                "full" => WindowMethod.Full,
                "llama.cpp" or "llamacpp" or "llama-cpp" => WindowMethod.LlamaCpp,
                var other => throw new AnyBitException($"--windows '{other}' is not one of: full, llama.cpp"),
            };
            var cache = kvCache.Parse(parse);
            var loadOptions = new LoadOptions { TokenizerPath = parse.GetValue(tokenizer), FloatReference = parse.GetValue(floatRef), Kernels = CommonOptions.ParseKernels(parse.GetValue(kernelsOption)) };
            using var m = ModelLoader.Load(parse.GetValue(model)!, loadOptions);
            using var baseModel = parse.GetValue(klBase) is string basePath ? ModelLoader.Load(basePath, loadOptions with { TokenizerPath = null }) : null;
            var tok = CommonOptions.RequireTokenizer(m);
            var ids = Perplexity.TokenizeForEvaluation(tok, parse.GetValue(text)!, max, method);
            if (parse.GetValue(sweep) is string list)
                return Task.FromResult(Sweep(m, baseModel, ids, c, method, list, parse.GetValue(json), cancellation));
            PerplexityResult result;
            bool interactive = !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive;
            if (interactive)
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                result = null!;
                console.Progress().Start(p =>
                {
                    var task = p.AddTask("perplexity");
                    result = Perplexity.Evaluate(m, baseModel, ids, c, method, new SyncProgress(x => { task.MaxValue = x.Total; task.Value = x.Done; }), cancellation, cache);
                });
            }
            else result = Perplexity.Evaluate(m, baseModel, ids, c, method, null, cancellation, cache);

            var k = result.Kl;
            if (parse.GetValue(json))
            {
                string cacheName = cache.ToString();
                if (k is null) CommonOptions.WriteJson(new { result.Perplexity, result.TokensScored, result.TokensPerSecond, KvCache = cacheName });
                else CommonOptions.WriteJson(new
                {
                    result.Perplexity, result.TokensScored, result.TokensPerSecond, result.BasePerplexity, KvCache = cacheName,
                    KlDivergence = new { k.MeanKl, k.MedianKl, k.P99Kl, k.MaxKl },
                    k.SameTopPercent, DeltaPMean = k.MeanDeltaP, DeltaPRms = k.RmsDeltaP,
                });
            }
            else
            {
                Console.Out.WriteLine($"perplexity {result.Perplexity:F4} over {result.TokensScored} tokens ({result.Windows} windows of {c}, {method} method), {result.TokensPerSecond:F1} tokens/s");
                if (!cache.IsPlainFloat32) Console.Out.WriteLine(CommonOptions.DescribeKvCache(cache, m.Config, c + 1));
                if (k is not null)
                {
                    Console.Out.WriteLine($"base perplexity {result.BasePerplexity:F4}");
                    Console.Out.WriteLine($"KL divergence mean {k.MeanKl:F6}, median {k.MedianKl:F6}, 99th percentile {k.P99Kl:F6}, max {k.MaxKl:F6}");
                    Console.Out.WriteLine($"same top token {k.SameTopPercent:F3} %, Δp mean {100 * k.MeanDeltaP:F3} %, RMS Δp {100 * k.RmsDeltaP:F3} %");
                }
            }
            return Task.FromResult(0);
        });
        return cmd;
    }

    /// <summary>--cache-sweep: one row per cache, the same windows for all, progress on stderr.</summary>
    private static int Sweep(Transformer m, Transformer? baseModel, int[] ids, int ctx, WindowMethod method, string list, bool json, CancellationToken cancellation)
    {
        var caches = list.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(AnyBit.Inference.KvCacheOptions.ParseShort).ToArray();
        if (caches.Length == 0) throw new AnyBitException("--cache-sweep names no cache");
        var progress = new SyncProgress(x => Console.Error.Write($"\rwindow {x.Done}/{x.Total}"));
        var results = Perplexity.Evaluate(m, baseModel, ids, ctx, method, caches, progress, cancellation);
        Console.Error.WriteLine();
        var rows = caches.Zip(results, (cache, r) => new
        {
            Cache = cache.ShortName, TypeK = cache.Key.Name, TypeV = cache.Value.Name, cache.Window,
            BitsK = 8 * cache.Key.BytesPerPosition(m.Config.HeadDim) / m.Config.HeadDim,
            BitsV = 8 * cache.Value.BytesPerPosition(m.Config.HeadDim) / m.Config.HeadDim,
            r.Perplexity, r.BasePerplexity, r.TokensScored,
            MeanKl = r.Kl?.MeanKl, P99Kl = r.Kl?.P99Kl, SameTopPercent = r.Kl?.SameTopPercent,
        }).ToArray();
        if (json)
        {
            CommonOptions.WriteJson(rows);
            return 0;
        }
        Console.Out.WriteLine($"{results[0].TokensScored} tokens scored ({results[0].Windows} windows of {ctx}, {method} method){(results[0].BasePerplexity is double b ? $", base perplexity {b:F4}" : "")}");
        Console.Out.WriteLine("| cache | K bits | V bits | window | perplexity | mean KLD | p99 KLD | same top % |");
        Console.Out.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
            Console.Out.WriteLine($"| `{r.Cache}` | {r.BitsK:F2} | {r.BitsV:F2} | {r.Window} | {r.Perplexity:F4} | {r.MeanKl:F6} | {r.P99Kl:F5} | {r.SameTopPercent:F2} |");
        return 0;
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and lag behind).</summary>
    private sealed class SyncProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => report(value);
    }
}
