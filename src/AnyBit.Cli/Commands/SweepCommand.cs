using System.CommandLine;
using AnyBit.Evaluation;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit sweep</c>: many formats and methods → report.json, report.md and Pareto charts.</summary>
internal static class SweepCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var formats = new Option<string>("--formats") { Description = "Comma-separated formats, e.g. \"q4_0,q4_k,int3:g64,nf4:g64,mxfp4\"", Required = true };
        var methods = new Option<string>("--methods") { Description = "Comma-separated methods per format: rtn, gptq, awq, awq+gptq, gptq+rotate", DefaultValueFactory = _ => "rtn" };
        var targets = new Option<string?>("--target-bpw") { Description = "Comma-separated mixed-precision points, e.g. \"3.0,3.5\"" };
        var text = new Option<string>("--text") { Description = "Evaluation text", Required = true };
        var calibration = new Option<string?>("--calibration") { Description = "Calibration text (gptq, awq, mixed precision)" };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Evaluation window", DefaultValueFactory = _ => 512 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Evaluate only the first N tokens of the text" };
        var output = new Option<string>("--output", "-o") { Description = "Report folder (resumes when it holds a report.json)", Required = true };
        var keep = new Option<bool>("--keep-models") { Description = "Keep the quantized GGUF files in OUTPUT/models" };
        var cmd = new Command("sweep", "Quantize into many formats, evaluate each, and report the Pareto front")
        {
            model, formats, methods, targets, text, calibration, ctx, maxTokens, output, keep,
        };
        cmd.SetAction((parse, cancellation) =>
        {
            static List<string> Split(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            var options = new SweepOptions
            {
                Model = parse.GetValue(model)!,
                Formats = Split(parse.GetValue(formats)!),
                Methods = Split(parse.GetValue(methods)!),
                TargetBitsPerWeight = parse.GetValue(targets) is string t
                    ? Split(t).Select(v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out double d) && d > 0 ? d : throw new AnyBitException($"--target-bpw: '{v}' is not a positive number")).ToList()
                    : [],
                TextFile = parse.GetValue(text)!,
                CalibrationFile = parse.GetValue(calibration),
                Context = parse.GetValue(ctx),
                MaxTokens = parse.GetValue(maxTokens),
                OutputDirectory = parse.GetValue(output)!,
                KeepModels = parse.GetValue(keep),
            };
            if (options.Formats.Count == 0 && options.TargetBitsPerWeight.Count == 0) throw new AnyBitException("--formats is empty");
            int total = Sweep.Points(options).Count; // validates formats and methods before any work
            List<SweepPoint> points;
            if (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive)
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                List<SweepPoint>? result = null;
                console.Progress().Start(p =>
                {
                    var task = p.AddTask("sweep", maxValue: total);
                    result = Sweep.Run(options, (i, n, label) => { task.Value = i; task.Description = label; }, cancellation);
                });
                points = result!;
            }
            else points = Sweep.Run(options, (i, n, label) => { if (i < n) Console.Error.WriteLine($"[{i + 1}/{n}] {label}"); }, cancellation);

            File.WriteAllText(Path.Combine(options.OutputDirectory, "report.md"), Sweep.Markdown(points, options.Model, options.TextFile, options.Context));
            SweepCharts.Write(points, options.OutputDirectory);
            Console.Out.WriteLine($"{points.Count} points → {Path.Combine(options.OutputDirectory, "report.md")}, report.json, pareto-kl.png/.svg, pareto-ppl.png/.svg");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
