using System.CommandLine;
using AnyBit.Quantization;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit synth</c>: a Llama-shaped GGUF with seeded random weights, for speed measurements on any shape.</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "tiny, 1b (2048×16, 32/8 heads, FFN 5632, vocab 32000), 3b, 8b, olmoe (OLMoE-1B-7B: 64 experts, 8 per token), tiny-moe or gpt-oss-20b (32 experts, 4 per token, MXFP4 experts)", DefaultValueFactory = _ => "tiny" };
        var experts = new Option<int?>("--experts") { Description = "Override the expert count (Mixture-of-Experts presets)" };
        var expertsUsed = new Option<int?>("--experts-used") { Description = "Override the experts per token" };
        var hidden = new Option<int?>("--hidden") { Description = "Override the hidden size" };
        var layers = new Option<int?>("--layers") { Description = "Override the layer count" };
        var heads = new Option<int?>("--heads") { Description = "Override the head count" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Override the key/value head count" };
        var ffn = new Option<int?>("--ffn") { Description = "Override the feed-forward size" };
        var vocab = new Option<int?>("--vocab") { Description = "Override the vocabulary size" };
        var format = new Option<string?>("--format", "-f") { Description = "Weight format: any quantize spec, a preset mix, or mxfp4_moe (experts MXFP4, other matrices Q8_0); default f16, mxfp4_moe for gpt-oss-20b" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 42 };
        var output = new Option<string>("--output", "-o") { Description = "Output .gguf file", Required = true };
        var cmd = new Command("synth", "Write a synthetic model of realistic shape (Llama, or a Mixture-of-Experts family) as GGUF") { preset, hidden, layers, heads, kvHeads, ffn, vocab, experts, expertsUsed, format, seed, output };
        cmd.SetAction((parse, cancellation) =>
        {
            var s = SyntheticShape.Preset(parse.GetValue(preset)!);
            s = s with
            {
                Hidden = parse.GetValue(hidden) ?? s.Hidden,
                Layers = parse.GetValue(layers) ?? s.Layers,
                Heads = parse.GetValue(heads) ?? s.Heads,
                KvHeads = parse.GetValue(kvHeads) ?? s.KvHeads,
                Ffn = parse.GetValue(ffn) ?? s.Ffn,
                Vocab = parse.GetValue(vocab) ?? s.Vocab,
                Experts = parse.GetValue(experts) ?? s.Experts,
                ExpertsUsed = parse.GetValue(expertsUsed) ?? s.ExpertsUsed,
            };
            var plan = SyntheticModel.Plan(s, parse.GetValue(format) ?? s.DefaultFormat, parse.GetValue(seed));
            string path = parse.GetValue(output)!;
            ModelQuantizer.Write(plan, path, null, cancellation);
            Console.Out.WriteLine($"wrote {path}: {plan.Parameters:N0} parameters, {new FileInfo(path).Length:N0} bytes, {plan.BitsPerWeight:F3} bits per weight");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
