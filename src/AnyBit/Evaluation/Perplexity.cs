using System.Diagnostics;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Evaluation;

/// <summary>Result of a perplexity run.</summary>
public sealed record PerplexityResult(double Perplexity, double MeanNll, long TokensScored, int Windows, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? TokensScored / Seconds : 0;
}

/// <summary>
/// Perplexity with full, non-overlapping windows, as the Gutenberg models were evaluated: the ids are cut into
/// windows of ctx+1 ids starting every ctx; in each window the ctx predictions of ids 1..ctx given the ids before
/// them are scored (no context carried across windows); a partial trailing window is dropped.
/// </summary>
public static class Perplexity
{
    /// <summary>Tokenizes a text file the way the evaluation does: the tokenizer's default encoding, then EOS appended.</summary>
    public static int[] TokenizeForEvaluation(ITokenizer tokenizer, string textFile, int? maxTokens)
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
        var ids = tokenizer.Encode(text, addSpecial: true).ToList();
        if (tokenizer.EosId is int eos) ids.Add(eos);
        if (maxTokens is int max && ids.Count > max) ids.RemoveRange(max, ids.Count - max);
        return ids.ToArray();
    }

    /// <summary>Scores <paramref name="ids"/>; <paramref name="progress"/> receives (windows done, windows total).</summary>
    public static PerplexityResult Evaluate(Transformer model, int[] ids, int ctx, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellation = default)
    {
        if (ctx < 1) throw new AnyBitException($"context {ctx} must be at least 1");
        if (ctx > model.Config.MaxPositions)
            throw new AnyBitException($"context {ctx} is longer than the model's {model.Config.MaxPositions} positions");
        int windows = ids.Length <= ctx ? 0 : (ids.Length - 1) / ctx;
        if (windows == 0) throw new AnyBitException($"the text has {ids.Length} tokens, fewer than one window of {ctx + 1}");
        int vocab = model.Config.VocabSize;
        using var session = model.CreateSession(ctx, maxBatch: Math.Min(ctx, 512));
        var logits = new float[(long)ctx * vocab];
        double nll = 0;
        long scored = 0;
        var clock = Stopwatch.StartNew();
        progress?.Report((0, windows));
        for (int w = 0; w < windows; w++)
        {
            cancellation.ThrowIfCancellationRequested();
            var window = ids.AsSpan(w * ctx, ctx + 1);
            session.Reset();
            session.Forward(window[..ctx], logits);
            for (int t = 0; t < ctx; t++)
                nll += NegativeLogLikelihood(logits.AsSpan(t * vocab, vocab), window[t + 1]);
            scored += ctx;
            progress?.Report((w + 1, windows));
        }
        double mean = nll / scored;
        return new PerplexityResult(Math.Exp(mean), mean, scored, windows, clock.Elapsed.TotalSeconds);
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
