using AnyBit.Evaluation;
using AnyBit.Kernels;
using AnyBit.Models;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// Mixed precision under a size budget. Each tensor's sensitivity is measured: the KL divergence of the model's
/// next-token distribution (on a few calibration windows) when that tensor alone is quantized to the most
/// aggressive candidate; the other candidates' losses follow from it in proportion to their squared weight error
/// (the embedding and head are measured for every candidate). Losses are taken as additive, and the plan minimizing their sum within the budget is found by a
/// Lagrangian sweep (each tensor picks argmin loss + λ·bytes) followed by greedy upgrades with what is left.
/// </summary>
public static class MixedPrecisionPlanner
{
    public sealed record Choice(string Tensor, TensorFormat Format, double Loss, long Bytes);

    /// <summary>ggml's k-quants and i-quants from 1.56 to 8.5 bits per weight, smallest first.</summary>
    private static readonly string[] Ladder = ["iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "q2_k", "iq3_xxs", "q3_k", "iq3_s", "iq4_xs", "q4_k", "q5_k", "q6_k", "q8_0"];

    /// <summary>
    /// The formats the planner chooses from unless told otherwise: the <see cref="Ladder"/>'s types this build has a
    /// format table row for. Those llama.cpp quantizes only with an importance matrix are offered to the tensors that
    /// have importance (<see cref="QuantPresets.NeedsImportance"/>).
    /// </summary>
    public static IReadOnlyList<string> DefaultCandidates { get; } = Ladder.Where(n => Formats.FormatTable.ByName(n) is not null).ToArray();

    /// <summary>
    /// The base format of a plan whose every quantizable tensor the planner chooses (a budget without a format):
    /// whatever it does not choose stays float.
    /// </summary>
    public const string BaseFormat = "f32";

    /// <summary>
    /// Chooses a format per quantizable tensor to fit the budget. <paramref name="importanceOf"/> gives a tensor's
    /// per-column importance (or null): candidates are quantized with it, as the final encoding will be, and those
    /// llama.cpp refuses without it are skipped for tensors that have none.
    /// </summary>
    public static Dictionary<string, TensorFormat> Choose(Transformer model, IReadOnlyDictionary<string, TensorFormat> planned, IReadOnlyDictionary<string, long[]> shapes, AccuracyOptions options,
        int[][] windows, Func<string, float[]?> importanceOf, Action<string>? status, CancellationToken cancellation,
        Func<string, long>? routedTokens = null)
    {
        var c = model.Config;
        var candidates = options.Candidates.Select(FormatRegistry.Parse).ToList();
        var evalWindows = windows.Take(2).Select(w => w.Take(Math.Min(128, w.Length)).ToArray()).ToArray();
        var baseLogits = evalWindows.Select(w => Logits(model, w)).ToArray();

        var tensors = planned.Keys.Where(IsQuantizable).ToList();
        long fixedBytes = planned.Where(kv => !tensors.Contains(kv.Key)).Sum(kv => kv.Value.Bind(Shape(shapes, kv.Key).Cols).ByteSize(Shape(shapes, kv.Key).Elements));
        long totalParams = planned.Keys.Sum(n => Shape(shapes, n).Elements);
        long budget = options.TargetBytes ?? (long)(options.TargetBitsPerWeight!.Value * totalParams / 8);
        long budgetForPlan = budget - fixedBytes;

        var options_ = new Dictionary<string, List<Choice>>();
        int done = 0;
        List<TensorFormat> Fitting(string name, int cols, float[]? importance)
        {
            var fitting = candidates.Select(f => f.Bind(cols))
                .Where(f => f.CheckRowLength(cols) is null && !(importance is null && f.GgmlType is IO.TensorType t && QuantPresets.NeedsImportance(t, name, null)))
                .OrderBy(f => f.BitsPerWeight)
                .ToList();
            return fitting.Count > 0 ? fitting : throw new AnyBitException($"no candidate format fits {name} (rows of {cols}{(importance is null ? ", no importance" : "")})");
        }
        double MeasureKl() => evalWindows.Select((w, k) => MeanKl(baseLogits[k], Logits(model, w), c.VocabSize)).Average();

        // Expert units (ExpertUnits), by their 3-D tensor: see ExpertChoices.
        var expertGroups = tensors.Where(n => ExpertUnits.Parse(n) is not null).GroupBy(n => ExpertUnits.StackedOf(n)!).ToList();
        foreach (var group in expertGroups)
        {
            cancellation.ThrowIfCancellationRequested();
            foreach (var (unit, list) in ExpertChoices(group.ToList(), model, shapes, importanceOf, routedTokens ?? (_ => 0), Fitting, MeasureKl))
                options_[unit] = list;
            done += group.Count();
            status?.Invoke($"sensitivity {done}/{tensors.Count}: {group.Key} (per expert)");
        }
        foreach (var name in tensors.Where(n => ExpertUnits.Parse(n) is null))
        {
            cancellation.ThrowIfCancellationRequested();
            var buffer = AccuracyPipeline.BufferOf(model.Weights, name);
            var (rows, cols, elements) = Shape(shapes, name);
            var original = buffer.Span.ToArray();
            var importance = importanceOf(name);
            // Smallest first: the first is the one whose loss is measured on the model.
            var fitting = Fitting(name, cols, importance);
            var errors = fitting.Select(f => SquaredError(original, Dequantized(f, original, cols, importance))).ToList();
            var list = new List<Choice>();
            bool hasHessian = AccuracyPipeline.InputOf(name) is not null;
            double klRef = 0, errRef = 0;
            for (int i = 0; i < fitting.Count; i++)
            {
                double loss;
                if (!hasHessian || i == 0)
                {
                    Dequantized(fitting[i], original, cols, importance).CopyTo(buffer.Span);
                    loss = evalWindows.Select((w, k) => MeanKl(baseLogits[k], Logits(model, w), c.VocabSize)).Average();
                    original.CopyTo(buffer.Span);
                    if (i == 0) { klRef = loss; errRef = errors[0]; }
                }
                else loss = errRef > 0 ? klRef * errors[i] / errRef : 0;
                list.Add(new Choice(name, fitting[i], loss, fitting[i].ByteSize(elements)));
            }
            options_[name] = list;
            status?.Invoke($"sensitivity {++done}/{tensors.Count}: {name}");
        }

        var plan = Solve(options_, budgetForPlan);
        return plan.ToDictionary(ch => ch.Tensor, ch => ch.Format);
    }

    /// <summary>
    /// The candidates of each expert of one 3-D tensor, with losses in the manner of MC-MoE (routing frequency times
    /// weight importance), anchored to a measured KL: all experts of the tensor are quantized to their smallest candidate
    /// at once and the KL divergence is measured (one measurement per tensor, not per expert: a rarely routed expert's
    /// own KL over the few sensitivity tokens would be mostly noise). That KL is shared among the experts, and each
    /// other candidate scaled, in proportion to the expert's output error over the calibration tokens routed to it,
    /// Σ_rows Σ_j s_j (w − q)², with s_j = Σ x_j² over its routed tokens (the Hessian's diagonal: tokens × importance,
    /// so the routing frequency is in it). An expert calibration never routed to gets 1% of the tensor's mean energy
    /// per column, so it is cheap but not free to squeeze.
    /// </summary>
    private static IEnumerable<(string Unit, List<Choice> Choices)> ExpertChoices(List<string> units, Transformer model, IReadOnlyDictionary<string, long[]> shapes,
        Func<string, float[]?> importanceOf, Func<string, long> routedTokens, Func<string, int, float[]?, List<TensorFormat>> fitting, Func<double> measureKl)
    {
        var (_, cols, _) = Shape(shapes, units[0]);
        var energy = units.Select(u => importanceOf(u) is float[] imp && imp.Length == cols
            ? imp.Select(v => (double)v * routedTokens(u)).ToArray() : null).ToList();
        var routed = energy.Where(e => e is not null).ToList();
        var floor = new double[cols];
        for (int j = 0; j < cols; j++) floor[j] = routed.Count == 0 ? 1 : 0.01 * routed.Sum(e => e![j]) / units.Count;
        var fits = new List<TensorFormat>[units.Count];
        var errors = new double[units.Count][];
        var originals = new float[units.Count][];
        for (int u = 0; u < units.Count; u++)
        {
            var (rows, _, _) = Shape(shapes, units[u]);
            var importance = importanceOf(units[u]);
            var buffer = AccuracyPipeline.BufferOf(model.Weights, units[u]);
            originals[u] = buffer.Span.ToArray();
            fits[u] = fitting(units[u], cols, importance);
            var weights = new double[cols];
            for (int j = 0; j < cols; j++) weights[j] = (energy[u]?[j] ?? 0) + floor[j];
            errors[u] = fits[u].Select(f => WeightedError(originals[u], Dequantized(f, originals[u], cols, importance), cols, weights)).ToArray();
            Dequantized(fits[u][0], originals[u], cols, importance).CopyTo(buffer.Span);
        }
        double kl = measureKl();
        for (int u = 0; u < units.Count; u++) originals[u].CopyTo(AccuracyPipeline.BufferOf(model.Weights, units[u]).Span);
        double total = errors.Sum(e => e[0]);
        for (int u = 0; u < units.Count; u++)
        {
            long elements = Shape(shapes, units[u]).Elements;
            yield return (units[u], fits[u].Select((f, i) => new Choice(units[u], f, total > 0 ? kl * errors[u][i] / total : 0, f.ByteSize(elements))).ToList());
        }
    }

    private static double WeightedError(float[] w, float[] q, int cols, double[] columnWeights)
    {
        double total = 0;
        for (long i = 0; i < w.Length; i++) { double e = w[i] - q[i]; total += columnWeights[i % cols] * e * e; }
        return total;
    }

    /// <summary>Minimizes Σ loss subject to Σ bytes ≤ budget over one choice per tensor.</summary>
    public static List<Choice> Solve(IReadOnlyDictionary<string, List<Choice>> choices, long budget)
    {
        List<Choice> Pick(double lambda) => choices.Values.Select(list => list.MinBy(ch => ch.Loss + lambda * ch.Bytes)!).ToList();
        var smallest = choices.Values.Select(list => list.MinBy(ch => ch.Bytes)!).ToList();
        if (smallest.Sum(ch => ch.Bytes) > budget)
            throw new AnyBitException($"the budget of {budget} bytes is below the smallest plan ({smallest.Sum(ch => ch.Bytes)} bytes)");
        double lo = 0, hi = 1;
        while (Pick(hi).Sum(ch => ch.Bytes) > budget) hi *= 2;
        for (int it = 0; it < 100; it++)
        {
            double mid = (lo + hi) / 2;
            if (Pick(mid).Sum(ch => ch.Bytes) > budget) lo = mid; else hi = mid;
        }
        var plan = Pick(hi).ToDictionary(ch => ch.Tensor);
        // Spend what the Lagrangian left: repeatedly take the upgrade with the best loss saved per byte that fits.
        long used = plan.Values.Sum(ch => ch.Bytes);
        while (true)
        {
            Choice? best = null;
            double bestRate = 0;
            foreach (var (name, current) in plan)
                foreach (var alt in choices[name])
                {
                    long extra = alt.Bytes - current.Bytes;
                    double saved = current.Loss - alt.Loss;
                    if (extra <= 0 || saved <= 0 || used + extra > budget) continue;
                    if (saved / extra > bestRate) { bestRate = saved / extra; best = alt; }
                }
            if (best is null) break;
            used += best.Bytes - plan[best.Tensor].Bytes;
            plan[best.Tensor] = best;
        }
        return plan.Values.ToList();
    }

    // The router stays as planned: its role reads no calibration input (TensorKind.Router, kept float32 as llama.cpp keeps it).
    private static bool IsQuantizable(string name) =>
        name == TensorRoles.TokenEmbd.Gguf || ExpertUnits.Parse(name) is not null || AccuracyPipeline.InputOf(name) is not null;

    private static (int Rows, int Cols, long Elements) Shape(IReadOnlyDictionary<string, long[]> shapes, string name)
    {
        var shape = shapes[name];
        long elements = shape.Aggregate(1L, (x, y) => x * y);
        int cols = (int)shape[^1];
        return ((int)(elements / cols), cols, elements);
    }

    private static float[] Dequantized(TensorFormat format, float[] w, int cols, float[]? importance)
    {
        var bytes = new byte[format.ByteSize(w.Length)];
        format.Quantize(w, cols, bytes, importance);
        var back = new float[w.Length];
        format.Dequantize(bytes, back);
        return back;
    }

    private static double SquaredError(float[] w, float[] q)
    {
        double total = 0;
        for (long i = 0; i < w.Length; i++) { double e = w[i] - q[i]; total += e * e; }
        return total;
    }

    private static float[] Logits(Transformer model, int[] window)
    {
        using var session = model.CreateSession(window.Length);
        var all = new float[(long)window.Length * model.Config.VocabSize];
        session.Forward(window, all);
        return all;
    }

    private static double MeanKl(float[] baseLogits, float[] logits, int vocab)
    {
        var acc = new KlAccumulator();
        int n = baseLogits.Length / vocab;
        for (int t = 0; t < n; t++)
            acc.Add(baseLogits.AsSpan(t * vocab, vocab), logits.AsSpan(t * vocab, vocab), 0);
        return acc.Result().MeanKl;
    }
}
