using System.CommandLine;
using System.Text.RegularExpressions;
using AnyBit.Quantization;
using AnyBit.Quantization.Methods;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit quantize</c>: any supported model (or bag of tensors) to a GGUF file in any format.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var format = new Option<string?>("--format", "-f") { Description = "Format or preset: q4_k, q8_0, int3:g64, nf4:g64, mxfp4, e3m2:g32, ternary, q4_k_m, iq2_m, f16, ... (optional with --target-bpw or --target-size)" };
        var output = new Option<string>("--output", "-o") { Description = "Output .gguf file", Required = true };
        var tensorType = new Option<string[]>("--tensor-type") { Description = "REGEX=SPEC: tensors whose GGUF name matches get SPEC (repeatable)", AllowMultipleArgumentsPerToken = false };
        var pure = new Option<bool>("--pure") { Description = "No mix: every weight matrix gets the one type --format names (iq2_xxs, ... are llama-quantize's mixes otherwise)" };
        var outputType = new Option<string?>("--output-tensor-type") { Description = "Format of the output head" };
        var embeddingType = new Option<string?>("--token-embedding-type") { Description = "Format of token_embd.weight" };
        var keepFloat = new Option<string[]>("--keep-float") { Description = "REGEX: matching tensors stay float32 (repeatable)" };
        var tokenizer = CommonOptions.Tokenizer();
        var json = CommonOptions.Json();
        var method = new Option<string>("--method") { Description = "rtn, or a combination of gptq, awq and rotate: gptq, awq, awq+gptq, gptq+rotate", DefaultValueFactory = _ => "rtn" };
        var rotate = new Option<bool>("--rotate") { Description = "Randomized Hadamard rotation of the residual stream, folded into the weights" };
        var calibration = new Option<string?>("--calibration") { Description = "Plain text to calibrate on (gptq, awq, --target-bpw)" };
        var calibrationWindows = new Option<int>("--calibration-windows") { Description = "Calibration windows", DefaultValueFactory = _ => 64 };
        var calibrationLength = new Option<int>("--calibration-length") { Description = "Tokens per calibration window", DefaultValueFactory = _ => 256 };
        var seed = new Option<ulong>("--seed") { Description = "Seed for calibration sampling and rotations", DefaultValueFactory = _ => 1 };
        var imatrix = new Option<string?>("--imatrix") { Description = "Importance matrix (.gguf or imatrix.dat, from 'anybit imatrix' or llama-imatrix): ggml types quantize as llama-quantize --imatrix, other formats get a weighted clip search" };
        var actOrder = new Option<bool>("--act-order") { Description = "GPTQ: columns in order of decreasing activation energy" };
        var sequential = new Option<bool>("--sequential") { Description = "GPTQ: each layer's Hessians from the inputs of the already-quantized layers before it, as GPTQ's reference (slower; by default all come from the float model in one pass)" };
        var damp = new Option<double>("--damp") { Description = "GPTQ: Hessian damping as a fraction of its mean diagonal", DefaultValueFactory = _ => 0.01 };
        var targetBpw = new Option<double?>("--target-bpw") { Description = "Mixed precision: choose a format per tensor to fit this many bits per weight" };
        var targetSize = new Option<string?>("--target-size") { Description = "Mixed precision: choose a format per tensor to fit this size (e.g. 12MB)" };
        var candidates = new Option<string?>("--candidates") { Description = $"Mixed precision: formats to choose from (default {string.Join(",", MixedPrecisionPlanner.DefaultCandidates)})" };
        var cmd = new Command("quantize", "Quantize a model into a GGUF file")
        {
            model, format, pure, output, tensorType, outputType, embeddingType, keepFloat, tokenizer, json,
            method, rotate, calibration, calibrationWindows, calibrationLength, seed, imatrix, actOrder, sequential, damp, targetBpw, targetSize, candidates,
        };
        cmd.SetAction((parse, cancellation) =>
        {
            bool budget = parse.GetValue(targetBpw) is not null || parse.GetValue(targetSize) is not null;
            // A budget alone is enough: the planner then chooses every quantizable tensor's format from the candidates.
            string spec = parse.GetValue(format) ?? (budget ? MixedPrecisionPlanner.BaseFormat
                : throw new AnyBitException("--format is required (a format or preset such as q4_k or q4_k_m), unless --target-bpw or --target-size lets the planner choose"));
            var options = new QuantizeOptions
            {
                Format = spec,
                Pure = parse.GetValue(pure),
                TensorTypes = (parse.GetValue(tensorType) ?? []).Select(ParseOverride).ToList(),
                OutputTensorType = parse.GetValue(outputType),
                TokenEmbeddingType = parse.GetValue(embeddingType),
                KeepFloat = (parse.GetValue(keepFloat) ?? []).Select(r => MakeRegex(r, "--keep-float")).ToList(),
                TokenizerPath = parse.GetValue(tokenizer),
            };
            string outPath = parse.GetValue(output)!;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var byMethod = AccuracyOptions.ForMethod(parse.GetValue(method)!, "--method");
            var accuracy = byMethod with
            {
                Rotate = byMethod.Rotate || parse.GetValue(rotate),
                CalibrationFile = parse.GetValue(calibration),
                CalibrationWindows = parse.GetValue(calibrationWindows),
                CalibrationLength = parse.GetValue(calibrationLength),
                Seed = parse.GetValue(seed),
                ImatrixFile = parse.GetValue(imatrix),
                GptqOptions = new GptqOptions(parse.GetValue(damp), 128, parse.GetValue(actOrder), parse.GetValue(sequential)),
                TargetBitsPerWeight = parse.GetValue(targetBpw),
                TargetBytes = parse.GetValue(targetSize) is string ts ? CommonOptions.ParseSize(ts, "--target-size") : null,
                Candidates = parse.GetValue(candidates) is string list
                    ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    : MixedPrecisionPlanner.DefaultCandidates,
            };
            if (accuracy.TargetBitsPerWeight is double bpw && !(bpw > 0 && bpw <= 32)) throw new AnyBitException($"--target-bpw {bpw} must be in (0, 32]");
            if (accuracy.CalibrationWindows < 1 || accuracy.CalibrationLength < 2) throw new AnyBitException("--calibration-windows must be ≥ 1 and --calibration-length ≥ 2");
            if (!(accuracy.GptqOptions.Damping >= 0)) throw new AnyBitException($"--damp {accuracy.GptqOptions.Damping} must be ≥ 0");
            foreach (var cand in accuracy.Candidates) FormatRegistry.Parse(cand);
            var (plan, input) = AccuracyPipeline.Plan(parse.GetValue(model)!, options, accuracy,
                line => { if (!parse.GetValue(json)) Console.Error.WriteLine($"[{line}]"); }, cancellation);
            using (input)
            {
                bool interactive = !Console.IsErrorRedirected && !parse.GetValue(json) && AnsiConsole.Profile.Capabilities.Interactive;
                if (interactive)
                {
                    var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                    console.Progress().Start(p =>
                    {
                        var task = p.AddTask("quantize", maxValue: plan.Tensors.Count);
                        ModelQuantizer.Write(plan, outPath, (i, n, name) => { task.Value = i; task.Description = name; }, cancellation);
                    });
                }
                else ModelQuantizer.Write(plan, outPath, null, cancellation);
            }
            long size = new FileInfo(outPath).Length;
            var formats = plan.Tensors.GroupBy(t => t.Format.Name).Select(g => new { Format = g.Key, Tensors = g.Count() }).ToArray();
            if (parse.GetValue(json))
                CommonOptions.WriteJson(new { Output = outPath, Bytes = size, plan.Parameters, plan.BitsPerWeight, Seconds = clock.Elapsed.TotalSeconds, Formats = formats });
            else
                Console.Out.WriteLine($"wrote {outPath}: {plan.Tensors.Count} tensors, {size:N0} bytes, {plan.BitsPerWeight:F4} bits per weight ({string.Join(", ", formats.Select(f => $"{f.Tensors} {f.Format}"))}) in {clock.Elapsed.TotalSeconds:F1} s");
            return Task.FromResult(0);
        });
        return cmd;
    }

    private static (Regex, string) ParseOverride(string text)
    {
        int eq = text.LastIndexOf('=');
        if (eq <= 0 || eq == text.Length - 1) throw new AnyBitException($"--tensor-type '{text}' must be REGEX=SPEC, e.g. 'attn_v=q6_k'");
        string spec = text[(eq + 1)..];
        if (!QuantPresets.IsPreset(spec)) FormatRegistry.Parse(spec);
        return (MakeRegex(text[..eq], "--tensor-type"), spec);
    }

    private static Regex MakeRegex(string pattern, string option)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new AnyBitException($"{option}: '{pattern}' is not a valid regular expression ({e.Message})");
        }
    }
}
