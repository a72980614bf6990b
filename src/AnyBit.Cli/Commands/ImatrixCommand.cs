using System.CommandLine;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;
using AnyBit.Quantization.Methods;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit imatrix</c>: per-channel activation statistics of every linear layer, for <c>quantize --imatrix</c>.</summary>
internal static class ImatrixCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var text = new Option<string>("--text") { Description = "Calibration text", Required = true };
        var windows = new Option<int>("--windows") { Description = "Windows sampled from the text", DefaultValueFactory = _ => 64 };
        var length = new Option<int>("--length") { Description = "Tokens per window", DefaultValueFactory = _ => 256 };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output", "-o") { Description = "Output importance matrix: .gguf (llama.cpp's GGUF imatrix layout) or .dat (llama.cpp's imatrix.dat, which every llama-quantize reads)", Required = true };
        var cmd = new Command("imatrix", "Record an importance matrix (mean x² per input channel of every linear layer)") { model, text, windows, length, seed, output };
        cmd.SetAction((parse, cancellation) =>
        {
            if (parse.GetValue(windows) < 1 || parse.GetValue(length) < 2) throw new AnyBitException("--windows must be ≥ 1 and --length ≥ 2");
            using var m = ModelLoader.Load(parse.GetValue(model)!);
            var tokenizer = CommonOptions.RequireTokenizer(m);
            var sample = CalibrationText.Sample(tokenizer, parse.GetValue(text)!, parse.GetValue(windows), Math.Min(parse.GetValue(length), m.Config.MaxPositions), parse.GetValue(seed));
            var stats = ActivationStatistics.Collect(m, sample, null, cancellation);
            ImportanceMatrix.Write(stats, m.Config, parse.GetValue(output)!, Path.GetFileName(parse.GetValue(text)!),
                chunks: sample.Length, chunkSize: sample[0].Length, cancellation: cancellation);
            Console.Out.WriteLine($"wrote {parse.GetValue(output)}: {m.Config.NumLayers * 7} tensors from {sample.Length} windows of {sample[0].Length} tokens");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
