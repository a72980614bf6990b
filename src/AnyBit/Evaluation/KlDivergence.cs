using System.Numerics.Tensors;

namespace AnyBit.Evaluation;

/// <summary>How far a model's next-token distributions are from a base model's, over the scored positions.</summary>
public sealed record KlStatistics(
    double MeanKl, double MedianKl, double P99Kl, double MaxKl,
    double SameTopPercent, double MeanDeltaP, double RmsDeltaP, long Positions);

/// <summary>
/// Accumulates KL(P_base ‖ P_model) = Σ p_base·(log p_base − log p_model) per position (in double, from
/// max-subtracted log-softmax), whether the two argmaxes agree, and Δp = p_model(target) − p_base(target) — the
/// quantities llama-perplexity's --kl-divergence prints.
/// </summary>
public sealed class KlAccumulator
{
    private readonly List<double> _kl = new();
    private double _deltaSum, _deltaSq;
    private long _same;

    public void Add(ReadOnlySpan<float> baseLogits, ReadOnlySpan<float> logits, int target)
    {
        double baseLse = LogSumExp(baseLogits, out int baseTop), lse = LogSumExp(logits, out int top);
        double kl = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double lpBase = baseLogits[i] - baseLse;
            double lp = logits[i] - lse;
            kl += Math.Exp(lpBase) * (lpBase - lp);
        }
        _kl.Add(Math.Max(0, kl));
        if (top == baseTop) _same++;
        double dp = Math.Exp(logits[target] - lse) - Math.Exp(baseLogits[target] - baseLse);
        _deltaSum += dp;
        _deltaSq += dp * dp;
    }

    private static double LogSumExp(ReadOnlySpan<float> x, out int argmax)
    {
        argmax = TensorPrimitives.IndexOfMax(x);
        float max = x[argmax];
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    public KlStatistics Result()
    {
        var sorted = _kl.Order().ToArray();
        int n = sorted.Length;
        double Percentile(double p) => n == 0 ? 0 : sorted[Math.Min(n - 1, (int)Math.Floor(p * (n - 1) + 0.5))];
        return new KlStatistics(
            n == 0 ? 0 : sorted.Average(), Percentile(0.5), Percentile(0.99), n == 0 ? 0 : sorted[^1],
            n == 0 ? 0 : 100.0 * _same / n, n == 0 ? 0 : _deltaSum / n, n == 0 ? 0 : Math.Sqrt(_deltaSq / n), n);
    }
}
