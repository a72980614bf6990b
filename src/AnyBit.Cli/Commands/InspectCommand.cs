using System.CommandLine;
using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit inspect</c>: architecture, hyperparameters, tokenizer and every tensor of a model, without loading weights.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var json = CommonOptions.Json();
        var kvCache = new CommonOptions.KvCache();
        var cmd = new Command("inspect", "Show a model's architecture, tokenizer and tensors (and the KV cache's size per position and per sequence)") { model, tokenizer, json };
        kvCache.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            if (AnyBit.Quantization.ModelQuantizer.IsBagOfTensors(parse.GetValue(model)!)) return InspectBag(parse.GetValue(model)!, parse.GetValue(json));
            using var files = ModelLoader.Open(parse.GetValue(model)!, new LoadOptions { TokenizerPath = parse.GetValue(tokenizer) });
            var c = files.Config;
            var cache = kvCache.Parse(parse);
            cache.Validate(c, c.MaxPositions);
            var kv = cache.Memory(c, c.MaxPositions);
            long totalBytes = files.Weights.Weights.Sum(w => w.Bytes);
            long totalParams = files.Weights.Weights.Sum(w => TensorTypes.ElementCount(w.Shape));
            // A token runs k of the E experts: the experts' weights count k/E toward the active parameters.
            var e = c.Experts;
            long expertParams = e is null ? 0 : TensorRoles.All.Where(r => r.IsExperts)
                .SelectMany(r => Enumerable.Range(0, c.NumLayers).Select(r.GgufName)).Where(files.Weights.Contains)
                .Sum(n => TensorTypes.ElementCount(files.Weights.Shape(n)));
            long activeParams = e is null ? totalParams : totalParams - expertParams / e.Count * (e.Count - e.Used);
            var tensors = files.Weights.Weights.Select(w => new
            {
                w.Name, Shape = w.Shape, Dtype = w.Type, w.Bytes,
                BitsPerWeight = Math.Round(8.0 * w.Bytes / Math.Max(1, TensorTypes.ElementCount(w.Shape)), 4),
            }).ToArray();
            if (parse.GetValue(json))
            {
                CommonOptions.WriteJson(new
                {
                    files.Path,
                    files.Format,
                    Architecture = c.Architecture.Name,
                    HiddenSize = c.HiddenSize,
                    IntermediateSize = c.IntermediateSize,
                    NumLayers = c.NumLayers,
                    NumHeads = c.NumHeads,
                    NumKvHeads = c.NumKvHeads,
                    HeadDim = c.HeadDim,
                    VocabSize = c.VocabSize,
                    ContextLength = c.MaxPositions,
                    RmsNormEps = c.RmsNormEps,
                    RopeTheta = c.Rope.Theta,
                    RopeScaling = c.Rope.Scaling.ToString().ToLowerInvariant(),
                    TiedEmbeddings = c.TiedEmbeddings,
                    Experts = e is null ? null : new
                    {
                        e.Count, e.Used, FfnSize = e.FfnSize, SharedFfnSize = e.SharedFfnSize,
                        Gating = e.Gating.ToString().ToLowerInvariant(), NormalizeWeights = e.NormalizeWeights,
                    },
                    Tokenizer = files.Tokenizer?.Kind,
                    Parameters = totalParams,
                    ActiveParameters = activeParams,
                    Bytes = totalBytes,
                    BitsPerWeight = Math.Round(8.0 * totalBytes / Math.Max(1, totalParams), 4),
                    KvCache = new { TypeK = cache.Key.Name, TypeV = cache.Value.Name, cache.Window, BytesPerToken = kv.BytesPerPosition, BytesPerSequence = kv.BytesPerSequence, SequenceLength = c.MaxPositions },
                    Tensors = tensors,
                });
                return 0;
            }
            var o = Console.Out;
            o.WriteLine($"{files.Path}  ({files.Format})");
            o.WriteLine($"architecture   {c.Architecture.DisplayName}");
            o.WriteLine($"hidden {c.HiddenSize}, ffn {c.IntermediateSize}, layers {c.NumLayers}, heads {c.NumHeads}, kv heads {c.NumKvHeads}, head dim {c.HeadDim}");
            o.WriteLine($"vocab {c.VocabSize}, context {c.MaxPositions}, rms eps {c.RmsNormEps:G}, rope θ {c.Rope.Theta:G} ({c.Rope.Scaling}{(c.Rope.Interleaved ? ", interleaved pairs" : "")}), tied embeddings {c.TiedEmbeddings}");
            if (e is not null)
                o.WriteLine($"experts        {e.Count}, {e.Used} per token, width {e.FfnSize}{(e.SharedFfnSize > 0 ? $", shared expert {e.SharedFfnSize}" : "")}, "
                    + $"{e.Gating.ToString().ToLowerInvariant()} router{(e.NormalizeWeights ? ", weights renormalized" : "")}; {activeParams:N0} active parameters per token");
            o.WriteLine($"tokenizer      {files.Tokenizer?.Kind ?? "none"}{(files.Tokenizer is null ? "" : $" ({files.Tokenizer.VocabSize} tokens, bos {files.Tokenizer.BosId?.ToString() ?? "-"}, eos {files.Tokenizer.EosId?.ToString() ?? "-"})")}");
            o.WriteLine($"parameters     {totalParams:N0} in {tensors.Length} tensors, {totalBytes:N0} bytes ({8.0 * totalBytes / Math.Max(1, totalParams):F2} bits per weight)");
            o.WriteLine($"kv cache       {CommonOptions.DescribeKvCache(cache, c, c.MaxPositions)[9..]}");
            o.WriteLine();
            int width = Math.Max(20, tensors.Max(t => t.Name.Length));
            foreach (var t in tensors)
                o.WriteLine($"{t.Name.PadRight(width)}  {t.Dtype,-14} {("[" + string.Join(", ", t.Shape) + "]"),-16} {t.Bytes,14:N0}  {t.BitsPerWeight,7:F3} bpw");
            return 0;
        });
        return cmd;
    }

    /// <summary>A file of tensors without a model: list them with their formats.</summary>
    private static int InspectBag(string path, bool json)
    {
        using ITensorStore store = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? SafetensorsFile.Open(path) : GgufFile.Open(path);
        var tensors = store.Tensors.Select(t => new { t.Name, t.Shape, Dtype = t.TypeName, Bytes = t.ByteLength, BitsPerWeight = Math.Round(t.BitsPerWeight, 4) }).ToArray();
        long bytes = tensors.Sum(t => t.Bytes), parameters = store.Tensors.Sum(t => t.ElementCount);
        if (json)
        {
            CommonOptions.WriteJson(new { Path = path, Format = "tensors only", Parameters = parameters, Bytes = bytes, BitsPerWeight = Math.Round(8.0 * bytes / Math.Max(1, parameters), 4), Tensors = tensors });
            return 0;
        }
        Console.Out.WriteLine($"{path}  (tensors only, no model)");
        Console.Out.WriteLine($"parameters     {parameters:N0} in {tensors.Length} tensors, {bytes:N0} bytes ({8.0 * bytes / Math.Max(1, parameters):F2} bits per weight)");
        Console.Out.WriteLine();
        int width = Math.Max(20, tensors.Length == 0 ? 0 : tensors.Max(t => t.Name.Length));
        foreach (var t in tensors)
            Console.Out.WriteLine($"{t.Name.PadRight(width)}  {t.Dtype,-14} {("[" + string.Join(", ", t.Shape) + "]"),-16} {t.Bytes,14:N0}  {t.BitsPerWeight,7:F3} bpw");
        return 0;
    }
}
