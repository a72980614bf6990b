using System.Diagnostics;
using AnyBit.Kernels;
using AnyBit.Models;

namespace AnyBit.Evaluation;

/// <summary>One llama-bench style result row: prompt processing (n_gen = 0) or generation (n_prompt = 0).</summary>
public sealed record BenchRow(string Model, long ModelSize, long ModelParams, double BitsPerWeight, int NPrompt, int NGen, int NDepth, int NThreads,
    double AvgTs, double StddevTs, double BytesPerSecond, IReadOnlyDictionary<string, string> Kernels, double[] Samples);

/// <summary>
/// Prompt-processing and generation speed, measured as llama-bench does: a warm-up run, then <c>reps</c> timed runs
/// of a random prompt of p tokens (one batch) and of n single-token decode steps after a one-token prompt; tokens/s
/// as mean ± sample standard deviation. Bytes/s is the bytes one decode step reads (every linear weight as the kernels
/// hold it in memory, packed or float32, plus one embedding row) × generated tokens/s — the memory traffic decoding
/// needs, to compare with the machine's bandwidth. With a depth (llama-bench's <c>-d</c>), each run starts with that
/// many positions already in the KV cache: processed once as a random prompt before the timed runs (untimed), or
/// written as random rows (<see cref="InferenceSession.FillRandom"/>) where prefill of a long depth would take hours;
/// each timed run rewinds to the depth.
/// </summary>
public static class Benchmark
{
    public static List<BenchRow> Run(Transformer model, long modelBytes, long modelParams, IReadOnlyDictionary<string, string> kernels,
        int prompt, int generate, int threads, int reps, ulong seed = 1234, CancellationToken cancellation = default, Inference.KvCacheOptions? cache = null,
        int depth = 0, bool randomFill = false)
    {
        if (reps < 1) throw new AnyBitException($"repetitions {reps} must be at least 1");
        if (prompt < 0 || generate < 0 || depth < 0) throw new AnyBitException("token counts must not be negative");
        int context = Context(prompt, generate, depth);
        if (context > model.Config.MaxPositions)
            throw new AnyBitException($"{model.Source}: the runs need {context} positions{(depth > 0 ? $" with a depth of {depth}" : "")}, more than the model's context of {model.Config.MaxPositions}");
        using var pool = new WorkerPool(threads);
        using var session = model.CreateSession(context, maxBatch: Math.Max(1, prompt), pool: pool, cache: cache);
        var rng = new Random((int)seed);
        int vocab = model.Config.VocabSize;
        int[] RandomIds(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
        double bpw = modelParams == 0 ? 0 : 8.0 * modelBytes / modelParams;
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Source));
        var rows = new List<BenchRow>();
        if (depth > 0)
        {
            if (randomFill) session.FillRandom(depth, seed);
            else
            {
                var ids = RandomIds(depth);
                // In pieces only so that Ctrl-C is seen during a long prefill (Forward itself cuts them into batches).
                for (int at = 0; at < depth; at += 512)
                {
                    cancellation.ThrowIfCancellationRequested();
                    session.Forward(ids.AsSpan(at, Math.Min(512, depth - at)));
                }
            }
        }

        if (prompt > 0)
        {
            var ids = RandomIds(prompt);
            var samples = Measure(reps, () => { session.Rewind(depth); session.Forward(ids); }, cancellation).Select(s => prompt / s).ToArray();
            rows.Add(Row(prompt, 0, samples, 0));
        }
        if (generate > 0)
        {
            var first = RandomIds(1);
            var next = new int[1];
            var samples = Measure(reps, () =>
            {
                session.Rewind(depth);
                session.Forward(first);
                for (int i = 0; i < generate; i++)
                {
                    next[0] = Sampler.ArgMax(session.LastLogits);
                    session.Forward(next);
                }
            }, cancellation).Select(s => generate / s).ToArray();
            rows.Add(Row(0, generate, samples, BytesPerToken(model)));
        }
        return rows;

        BenchRow Row(int p, int n, double[] samples, long bytesPerToken)
        {
            double mean = samples.Average();
            double sd = samples.Length > 1 ? Math.Sqrt(samples.Sum(s => (s - mean) * (s - mean)) / (samples.Length - 1)) : 0;
            return new BenchRow(name, modelBytes, modelParams, bpw, p, n, depth, pool.WorkerCount, mean, sd, bytesPerToken * mean, kernels, samples);
        }
    }

    /// <summary>Positions a run needs: the depth, then the prompt or a one-token prompt and the generated tokens.</summary>
    public static int Context(int prompt, int generate, int depth) => depth + Math.Max(prompt, generate + 1) + 1;

    /// <summary>Weight bytes a decode step reads: every linear layer as held in memory, and one embedding row.</summary>
    public static long BytesPerToken(Transformer model)
    {
        var w = model.Weights;
        // A Mixture-of-Experts layer reads its router, the shared expert and k experts' weights per token.
        int used = model.Config.Experts?.Used ?? 0;
        long bytes = w.Layers.Sum(l => l.Linears.Sum(x => x.ByteLength) + (l.Experts?.BytesPerToken(used) ?? 0));
        return bytes + w.Output.ByteLength + (long)model.Config.HiddenSize * sizeof(float);
    }

    private static double[] Measure(int reps, Action run, CancellationToken cancellation)
    {
        run(); // warm-up: JIT, page faults of the weights
        var seconds = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            cancellation.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            run();
            seconds[r] = clock.Elapsed.TotalSeconds;
        }
        return seconds;
    }
}
