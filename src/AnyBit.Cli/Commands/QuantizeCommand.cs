using System.CommandLine;
using System.Text.RegularExpressions;
using AnyBit.Quantization;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit quantize</c>: any supported model (or bag of tensors) to a GGUF file in any format.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var format = new Option<string>("--format", "-f") { Description = "Format or preset: q4_k, q8_0, int3:g64, nf4:g64, mxfp4, e3m2:g32, ternary, q4_k_m, f16, ...", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Output .gguf file", Required = true };
        var tensorType = new Option<string[]>("--tensor-type") { Description = "REGEX=SPEC: tensors whose GGUF name matches get SPEC (repeatable)", AllowMultipleArgumentsPerToken = false };
        var outputType = new Option<string?>("--output-tensor-type") { Description = "Format of the output head" };
        var embeddingType = new Option<string?>("--token-embedding-type") { Description = "Format of token_embd.weight" };
        var keepFloat = new Option<string[]>("--keep-float") { Description = "REGEX: matching tensors stay float32 (repeatable)" };
        var tokenizer = CommonOptions.Tokenizer();
        var json = CommonOptions.Json();
        var cmd = new Command("quantize", "Quantize a model into a GGUF file") { model, format, output, tensorType, outputType, embeddingType, keepFloat, tokenizer, json };
        cmd.SetAction((parse, cancellation) =>
        {
            var options = new QuantizeOptions
            {
                Format = parse.GetValue(format)!,
                TensorTypes = (parse.GetValue(tensorType) ?? []).Select(ParseOverride).ToList(),
                OutputTensorType = parse.GetValue(outputType),
                TokenEmbeddingType = parse.GetValue(embeddingType),
                KeepFloat = (parse.GetValue(keepFloat) ?? []).Select(r => MakeRegex(r, "--keep-float")).ToList(),
                TokenizerPath = parse.GetValue(tokenizer),
            };
            string outPath = parse.GetValue(output)!;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var (plan, input) = ModelQuantizer.Plan(parse.GetValue(model)!, options);
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
