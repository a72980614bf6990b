using System.Diagnostics;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Evaluation;

/// <summary>Result of a perplexity run (with KL-divergence statistics when a base model was compared).</summary>
public sealed record PerplexityResult(double Perplexity, double MeanNll, long TokensScored, int Windows, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? TokensScored / Seconds : 0;
    public KlStatistics? Kl { get; init; }
    /// <summary>The perplexity of the windows so far, after each window (what llama-perplexity prints as [1]…, [2]…).</summary>
    public IReadOnlyList<double> RunningPerplexity { get; init; } = [];
    /// <summary>The base model's perplexity on the same windows, when one was compared.</summary>
    public double? BasePerplexity { get; init; }
}

/// <summary>
/// Perplexity over a token stream cut into windows (<see cref="WindowMethod"/>), optionally compared token by token
/// with a base model for KL divergence, top-1 agreement and Δp (as llama-perplexity's KLD mode reports them).
/// </summary>
public static class Perplexity
{
    /// <summary>
    /// Tokenizes a text file for evaluation. Full windows: the tokenizer's default encoding with EOS appended (the
    /// Gutenberg training script). llama.cpp windows: the file without its final newline (as llama-perplexity -f
    /// reads it), encoded with the tokenizer's BOS rule, nothing appended.
    /// </summary>
    public static int[] TokenizeForEvaluation(ITokenizer tokenizer, string textFile, int? maxTokens, WindowMethod method = WindowMethod.Full)
    {
        if (!File.Exists(textFile)) throw new InvalidModelFileException(textFile, "file not found");
        string text;
        try
        {
            text = File.ReadAllText(textFile);
        }
        catch (IOException e)
        {
            throw new InvalidModelFileException(textFile, $"cannot read: {e.Message}");
        }
        if (text.Length == 0) throw new InvalidModelFileException(textFile, "the text file is empty");
        List<int> ids;
        if (method == WindowMethod.Full)
        {
            ids = tokenizer.Encode(text, addSpecial: true).ToList();
            if (tokenizer.EosId is int eos) ids.Add(eos);
        }
        else
        {
            if (text.EndsWith('\n')) text = text[..^1];
            ids = tokenizer.Encode(text, addSpecial: true).ToList();
        }
        if (maxTokens is int max && ids.Count > max) ids.RemoveRange(max, ids.Count - max);
        return ids.ToArray();
    }

    /// <summary>Scores <paramref name="ids"/> with full windows (the default method).</summary>
    public static PerplexityResult Evaluate(Transformer model, int[] ids, int ctx, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellation = default) =>
        Evaluate(model, null, ids, ctx, WindowMethod.Full, progress, cancellation);

    /// <summary>
    /// Scores <paramref name="ids"/> under <paramref name="model"/>; with <paramref name="baseModel"/> also computes
    /// KL(base ‖ model) and agreement statistics on the same windows.
    /// </summary>
    /// <remarks><paramref name="cache"/> is the KV cache of <paramref name="model"/>'s session; the base model's is
    /// always float32, so comparing a model with itself measures what its cache type loses.</remarks>
    public static PerplexityResult Evaluate(Transformer model, Transformer? baseModel, int[] ids, int ctx, WindowMethod method,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellation = default, Inference.KvCacheOptions? cache = null) =>
        Evaluate(model, baseModel, ids, ctx, method, [cache ?? Inference.KvCacheOptions.Default], progress, cancellation)[0];

    /// <summary>
    /// One result per KV cache in <paramref name="caches"/>, all on the same windows: the base model runs once per
    /// window and each cache's session after it (the KV cache quality table: <c>perplexity --cache-sweep</c>).
    /// </summary>
    public static IReadOnlyList<PerplexityResult> Evaluate(Transformer model, Transformer? baseModel, int[] ids, int ctx, WindowMethod method,
        IReadOnlyList<Inference.KvCacheOptions> caches, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellation = default)
    {
        if (ctx < 2) throw new AnyBitException($"context {ctx} must be at least 2");
        if (ctx > model.Config.MaxPositions)
            throw new AnyBitException($"context {ctx} is longer than the model's {model.Config.MaxPositions} positions");
        if (baseModel is not null && baseModel.Config.VocabSize != model.Config.VocabSize)
            throw new AnyBitException($"the base model's vocabulary ({baseModel.Config.VocabSize}) differs from the model's ({model.Config.VocabSize})");
        if (caches.Count == 0) throw new ArgumentException("no KV cache to evaluate", nameof(caches));
        foreach (var c in caches) c.Validate(model.Config, ctx + 1);
        int? bos = model.Tokenizer?.BosId;
        bool addBos = method == WindowMethod.LlamaCpp && bos is not null && model.Tokenizer!.Encode("", addSpecial: true) is [var first] && first == bos;
        var windows = EvaluationWindows.Cut(ids.Length, ctx, method, addBos);
        if (windows.Count == 0)
            throw new AnyBitException($"the text has {ids.Length} tokens, fewer than one window of {(method == WindowMethod.Full ? ctx + 1 : ctx)}");

        int vocab = model.Config.VocabSize;
        int batch = Math.Min(ctx, 512);
        // One cache keeps its session across windows; several take turns, each session made for its window only.
        using var single = caches.Count == 1 ? model.CreateSession(ctx + 1, maxBatch: batch, cache: caches[0]) : null;
        using var baseSession = baseModel?.CreateSession(ctx + 1, maxBatch: batch);
        var logits = new float[(long)(ctx + 1) * vocab];
        var baseLogits = baseModel is null ? null : new float[(long)(ctx + 1) * vocab];
        var kl = caches.Select(_ => baseModel is null ? null : new KlAccumulator()).ToArray();
        var nll = new double[caches.Count];
        var running = caches.Select(_ => new List<double>()).ToArray();
        double baseNll = 0;
        long scored = 0;
        var input = new int[ctx + 1];
        var clock = Stopwatch.StartNew();
        progress?.Report((0, windows.Count));
        for (int w = 0; w < windows.Count; w++)
        {
            cancellation.ThrowIfCancellationRequested();
            var win = windows[w];
            int fed = win.Length - 1; // the last id is only a target
            ids.AsSpan(win.Start, win.Length).CopyTo(input);
            if (win.ReplaceFirstWithBos) input[0] = bos!.Value;
            if (baseSession is not null)
            {
                baseSession.Reset();
                baseSession.Forward(input.AsSpan(0, fed), baseLogits);
                for (int t = win.FirstScored; t < fed; t++) baseNll += NegativeLogLikelihood(baseLogits.AsSpan(t * vocab, vocab), ids[win.Start + t + 1]);
            }
            for (int c = 0; c < caches.Count; c++)
            {
                var session = single ?? model.CreateSession(ctx + 1, maxBatch: batch, cache: caches[c]);
                try
                {
                    session.Reset();
                    session.Forward(input.AsSpan(0, fed), logits);
                }
                finally
                {
                    if (single is null) session.Dispose();
                }
                for (int t = win.FirstScored; t < fed; t++)
                {
                    int target = ids[win.Start + t + 1];
                    var row = logits.AsSpan(t * vocab, vocab);
                    nll[c] += NegativeLogLikelihood(row, target);
                    kl[c]?.Add(baseLogits.AsSpan(t * vocab, vocab), row, target);
                }
            }
            scored += fed - win.FirstScored;
            for (int c = 0; c < caches.Count; c++) running[c].Add(Math.Exp(nll[c] / scored));
            progress?.Report((w + 1, windows.Count));
        }
        double seconds = clock.Elapsed.TotalSeconds;
        return caches.Select((_, c) => new PerplexityResult(Math.Exp(nll[c] / scored), nll[c] / scored, scored, windows.Count, seconds)
        {
            Kl = kl[c]?.Result(),
            RunningPerplexity = running[c],
            BasePerplexity = kl[c] is null ? null : Math.Exp(baseNll / scored),
        }).ToArray();
    }

    /// <summary>−log softmax(logits)[target], computed in double with the max subtracted.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        float max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        return -(logits[target] - max - Math.Log(sum));
    }
}
