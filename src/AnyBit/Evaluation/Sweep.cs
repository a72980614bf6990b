using System.Text.Json;
using System.Text.Json.Serialization;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Quantization.Methods;

namespace AnyBit.Evaluation;

/// <summary>What <c>anybit sweep</c> runs.</summary>
public sealed record SweepOptions
{
    public required string Model { get; init; }
    public required IReadOnlyList<string> Formats { get; init; }
    /// <summary>Methods per format: rtn, gptq, awq, awq+gptq, each optionally "+rotate".</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["rtn"];
    /// <summary>Mixed-precision points: target bits per weight (candidates from <see cref="Candidates"/>).</summary>
    public IReadOnlyList<double> TargetBitsPerWeight { get; init; } = [];
    public IReadOnlyList<string> Candidates { get; init; } = MixedPrecisionPlanner.DefaultCandidates;
    public required string TextFile { get; init; }
    public string? CalibrationFile { get; init; }
    public int Context { get; init; } = 512;
    public int? MaxTokens { get; init; }
    public required string OutputDirectory { get; init; }
    public bool KeepModels { get; init; }
}

/// <summary>One measured point of a sweep.</summary>
public sealed record SweepPoint
{
    public required string Format { get; init; }
    public required string Method { get; init; }
    public required string Label { get; init; }
    public double BitsPerWeight { get; init; }
    public long FileBytes { get; init; }
    public double Perplexity { get; init; }
    public double BasePerplexity { get; init; }
    public double KlMean { get; init; }
    public double KlMedian { get; init; }
    public double KlP99 { get; init; }
    public double Top1Agreement { get; init; }
    public long TokensScored { get; init; }
    public double QuantizeSeconds { get; init; }
    public double EvaluateSeconds { get; init; }
    /// <summary>True when no other point has fewer or equal bits per weight and lower KL divergence.</summary>
    public bool Pareto { get; set; }
}

/// <summary>
/// Quantizes a model into many formats and methods, evaluates each against the original on the same text
/// (perplexity, KL divergence, top-1 agreement) and records bits per weight and size. Each finished point is saved
/// to report.json at once, so an interrupted sweep resumes where it stopped.
/// </summary>
public static class Sweep
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The (format, method) points the options describe, in order.</summary>
    public static List<(string Format, string Method, AccuracyOptions Accuracy)> Points(SweepOptions o)
    {
        var points = new List<(string, string, AccuracyOptions)>();
        foreach (var format in o.Formats)
        {
            FormatRegistry.Parse(format);
            foreach (var method in o.Methods) points.Add((format, method, AccuracyOptions.ForMethod(method, "--methods") with { CalibrationFile = o.CalibrationFile }));
        }
        foreach (double bpw in o.TargetBitsPerWeight)
            points.Add(($"mixed@{bpw:0.###}", "rtn", new AccuracyOptions { CalibrationFile = o.CalibrationFile, TargetBitsPerWeight = bpw, Candidates = o.Candidates }));
        return points;
    }

    public static string ReportPath(string dir) => Path.Combine(dir, "report.json");

    public static List<SweepPoint> Load(string dir)
    {
        string path = ReportPath(dir);
        if (!File.Exists(path)) return [];
        try
        {
            return JsonSerializer.Deserialize<List<SweepPoint>>(File.ReadAllText(path), Json) ?? [];
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"not a sweep report ({e.Message}); move it away to start over");
        }
    }

    public static List<SweepPoint> Run(SweepOptions o, Action<int, int, string>? progress = null, CancellationToken cancellation = default)
    {
        var todo = Points(o);
        if (o.CalibrationFile is null && todo.Any(p => p.Accuracy.NeedsCalibration))
            throw new AnyBitException("gptq, awq and mixed-precision points need --calibration FILE");
        Directory.CreateDirectory(o.OutputDirectory);
        var points = Load(o.OutputDirectory);
        using var baseModel = ModelLoader.Load(o.Model);
        var tokenizer = baseModel.Tokenizer ?? throw new AnyBitException($"{o.Model}: the model has no tokenizer to read the evaluation text");
        var ids = Perplexity.TokenizeForEvaluation(tokenizer, o.TextFile, o.MaxTokens);
        string models = Path.Combine(o.OutputDirectory, "models");
        Directory.CreateDirectory(models);
        for (int i = 0; i < todo.Count; i++)
        {
            var (format, method, accuracy) = todo[i];
            string label = method == "rtn" ? format : $"{format} {method}";
            progress?.Invoke(i, todo.Count, label);
            if (points.Any(p => p.Label == label)) continue; // resumed: already measured
            cancellation.ThrowIfCancellationRequested();
            string file = Path.Combine(models, Slug(label) + ".gguf");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var options = new QuantizeOptions { Format = format.StartsWith("mixed@", StringComparison.Ordinal) ? MixedPrecisionPlanner.BaseFormat : format };
            var (plan, resources) = AccuracyPipeline.Plan(o.Model, options, accuracy, null, cancellation);
            using (resources) ModelQuantizer.Write(plan, file, null, cancellation);
            double quantizeSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            PerplexityResult result;
            using (var quantized = ModelLoader.Load(file))
                result = Perplexity.Evaluate(quantized, baseModel, ids, o.Context, WindowMethod.Full, null, cancellation);
            var kl = result.Kl!;
            points.Add(new SweepPoint
            {
                Format = format, Method = method, Label = label,
                BitsPerWeight = plan.BitsPerWeight, FileBytes = new FileInfo(file).Length,
                Perplexity = result.Perplexity, BasePerplexity = result.BasePerplexity ?? double.NaN,
                KlMean = kl.MeanKl, KlMedian = kl.MedianKl, KlP99 = kl.P99Kl, Top1Agreement = kl.SameTopPercent,
                TokensScored = result.TokensScored, QuantizeSeconds = quantizeSeconds, EvaluateSeconds = clock.Elapsed.TotalSeconds,
            });
            if (!o.KeepModels) File.Delete(file);
            MarkPareto(points);
            Save(points, o.OutputDirectory);
        }
        progress?.Invoke(todo.Count, todo.Count, "done");
        MarkPareto(points);
        Save(points, o.OutputDirectory);
        if (!o.KeepModels && Directory.Exists(models) && !Directory.EnumerateFileSystemEntries(models).Any()) Directory.Delete(models);
        return points;
    }

    public static void MarkPareto(List<SweepPoint> points)
    {
        foreach (var p in points)
            p.Pareto = !points.Any(q => q != p && q.BitsPerWeight <= p.BitsPerWeight && q.KlMean < p.KlMean
                                        && (q.BitsPerWeight < p.BitsPerWeight || q.KlMean < p.KlMean));
    }

    private static void Save(List<SweepPoint> points, string dir)
    {
        string path = ReportPath(dir), temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(points, Json));
        File.Move(temp, path, overwrite: true);
    }

    private static string Slug(string label) => string.Concat(label.Select(ch => char.IsLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '_'));

    /// <summary>A Markdown table of the points by bits per weight, Pareto-optimal points in bold.</summary>
    public static string Markdown(IReadOnlyList<SweepPoint> points, string model, string text, int context)
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"# Sweep: {Path.GetFileName(Path.TrimEndingDirectorySeparator(model))}");
        sb.AppendLine();
        var first = points.FirstOrDefault();
        sb.AppendLine($"Evaluated on `{Path.GetFileName(text)}`, {first?.TokensScored ?? 0:N0} tokens in windows of {context}; base perplexity {first?.BasePerplexity:F4}. " +
                      "KL = mean KL(base ‖ quantized) per token; top-1 = how often both models' most likely next token agree. " +
                      "**Bold** rows are Pareto-optimal (no point has fewer or equal bits per weight and lower KL).");
        sb.AppendLine();
        sb.AppendLine("| format | method | bits/weight | file bytes | perplexity | Δ ppl % | KL mean | KL p99 | top-1 % |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var p in points.OrderBy(p => p.BitsPerWeight).ThenBy(p => p.KlMean))
        {
            string b = p.Pareto ? "**" : "";
            sb.AppendLine($"| {b}{p.Format}{b} | {p.Method} | {p.BitsPerWeight:F3} | {p.FileBytes:N0} | {p.Perplexity:F4} | {100 * (p.Perplexity / p.BasePerplexity - 1):F2} | {p.KlMean:F5} | {p.KlP99:F4} | {p.Top1Agreement:F2} |");
        }
        return sb.ToString();
    }
}
