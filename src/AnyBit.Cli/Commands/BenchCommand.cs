using System.CommandLine;
using AnyBit.Evaluation;
using AnyBit.Models;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit bench</c>: prompt-processing and generation tokens/s, llama-bench style.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompt = new Option<int>("-p", "--n-prompt") { Description = "Prompt tokens per prompt-processing run", DefaultValueFactory = _ => 512 };
        var gen = new Option<int>("-n", "--n-gen") { Description = "Tokens per generation run", DefaultValueFactory = _ => 128 };
        var threads = new Option<int>("-t", "--threads") { Description = "Threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var reps = new Option<int>("-r", "--repetitions") { Description = "Timed repetitions", DefaultValueFactory = _ => 5 };
        var depth = new Option<int>("-d", "--n-depth") { Description = "Positions already in the KV cache before each run (llama-bench's -d)", DefaultValueFactory = _ => 0 };
        var fill = new Option<string>("--depth-fill")
        {
            Description = "How the depth is put in the cache: prefill (a random prompt, as llama-bench) or random (random rows written without running the model, for long depths)",
            DefaultValueFactory = _ => "prefill",
        };
        fill.AcceptOnlyFromAmong("prefill", "random");
        var json = CommonOptions.Json();
        var kernelsOption = CommonOptions.Kernels();
        var kvCache = new CommonOptions.KvCache();
        var cmd = new Command("bench", "Measure prompt-processing and generation speed") { model, prompt, gen, threads, reps, depth, fill, json, kernelsOption };
        kvCache.AddTo(cmd);
        cmd.SetAction((parse, cancellation) =>
        {
            int t = parse.GetValue(threads);
            if (t < 1 || t > 1024) throw new AnyBitException($"--threads {t} is out of range");
            string path = parse.GetValue(model)!;
            var mode = CommonOptions.ParseKernels(parse.GetValue(kernelsOption));
            var cache = kvCache.Parse(parse);
            long bytes, parameters;
            var kernels = new Dictionary<string, string>();
            using (var files = ModelLoader.Open(path))
            {
                var matrices = files.Weights.Weights.Where(w => w.Shape.Length >= 2).ToList();
                bytes = files.Weights.Weights.Sum(w => w.Bytes);
                parameters = files.Weights.Weights.Sum(w => AnyBit.IO.TensorTypes.ElementCount(w.Shape));
            }
            using var m = ModelLoader.Load(path, new LoadOptions { Kernels = mode });
            foreach (var (type, kernel) in KernelReport.Describe(m)) kernels[type] = kernel;
            int d = parse.GetValue(depth);
            var rows = Benchmark.Run(m, bytes, parameters, kernels, parse.GetValue(prompt), parse.GetValue(gen), t, parse.GetValue(reps), cancellation: cancellation, cache: cache,
                depth: d, randomFill: parse.GetValue(fill) == "random");
            int benchContext = Benchmark.Context(parse.GetValue(prompt), parse.GetValue(gen), d);
            var kvMemory = cache.Memory(m.Config, benchContext);
            if (parse.GetValue(json))
            {
                CommonOptions.WriteJson(rows.Select(r => new
                {
                    model_filename = r.Model, model_size = r.ModelSize, model_n_params = r.ModelParams, n_prompt = r.NPrompt, n_gen = r.NGen, n_depth = r.NDepth,
                    n_threads = r.NThreads, avg_ts = r.AvgTs, stddev_ts = r.StddevTs, samples_ts = r.Samples,
                    bytes_per_second = r.BytesPerSecond, bits_per_weight = r.BitsPerWeight, kernels = r.Kernels,
                    type_k = cache.Key.Name, type_v = cache.Value.Name, cache_window = cache.Window,
                    kv_bytes_per_token = kvMemory.BytesPerPosition, kv_bytes_per_sequence = kvMemory.BytesPerSequence,
                }).ToArray());
                return Task.FromResult(0);
            }
            Console.Out.WriteLine($"| model | size | params | bpw | threads | test | t/s | GB/s |");
            Console.Out.WriteLine($"|---|---|---|---|---|---|---|---|");
            foreach (var r in rows)
                Console.Out.WriteLine($"| {r.Model} | {r.ModelSize / 1048576.0:F2} MiB | {r.ModelParams / 1e6:F2} M | {r.BitsPerWeight:F2} | {r.NThreads} | {(r.NPrompt > 0 ? $"pp{r.NPrompt}" : $"tg{r.NGen}")}{(r.NDepth > 0 ? $" @ d{r.NDepth}" : "")} | {r.AvgTs:F2} ± {r.StddevTs:F2} | {(r.NGen > 0 ? (r.BytesPerSecond / 1e9).ToString("F2") : "-")} |");
            foreach (var (type, kernel) in kernels) Console.Out.WriteLine($"kernel {type}: {kernel}");
            Console.Out.WriteLine(CommonOptions.DescribeKvCache(cache, m.Config, benchContext));
            return Task.FromResult(0);
        });
        return cmd;
    }
}
