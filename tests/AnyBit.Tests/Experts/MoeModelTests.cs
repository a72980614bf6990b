using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Tests.Experts;

/// <summary>
/// The Mixture-of-Experts forward pass on tiny seeded models of each family (<see cref="TinyMoe"/>): logits equal to
/// a float64 forward written from the definitions (<see cref="MoeReference"/>), in prefill chunks and token by token.
/// </summary>
public class MoeModelTests
{
    public static TheoryData<string> Families() => new(["llama", "qwen2moe", "qwen3moe", "olmoe"]);

    internal static TinyMoe Family(string arch) => arch switch
    {
        "llama" => TinyMoe.Mixtral,
        "qwen2moe" => TinyMoe.Qwen2Moe,
        "qwen3moe" => TinyMoe.Qwen3Moe,
        _ => TinyMoe.Olmoe,
    };

    private static readonly Lazy<string> PriorText = new(() => File.ReadAllText(TinyMoe.Text));

    /// <summary>The tiny model of a family, written once per test run.</summary>
    internal static string ModelPath(string arch)
    {
        lock (Written)
        {
            if (Written.TryGetValue(arch, out var path)) return path;
            path = Path.Combine(Shared.TempDir(), $"tiny-{arch}.gguf");
            Family(arch).Write(path, PriorText.Value);
            return Written[arch] = path;
        }
    }
    private static readonly Dictionary<string, string> Written = [];

    internal static int[] Prompt(int count)
    {
        using var stories = ModelLoader.Load(TinyMoe.Stories);
        return stories.Tokenizer!.Encode(PriorText.Value[..2000]).Take(count).ToArray();
    }

    [Theory, MemberData(nameof(Families))]
    public void Logits_equal_a_float64_forward_from_the_definition(string arch)
    {
        string path = ModelPath(arch);
        var tokens = Prompt(24);
        double[][] expected;
        using (var g = GgufFile.Open(path)) expected = new MoeReference(g).Logits(tokens);

        using var model = ModelLoader.Load(path);
        Assert.Equal(Family(arch).Experts, model.Config.Experts!.Count);
        int vocab = model.Config.VocabSize;
        // The prompt in chunks of 5 (tokens grouped by expert within each chunk), then the same tokens one at a time.
        var all = new float[tokens.Length * vocab];
        using (var chunked = model.CreateSession(64, maxBatch: 5)) chunked.Forward(tokens, all);
        using var single = model.CreateSession(64, maxBatch: 1);
        for (int t = 0; t < tokens.Length; t++)
        {
            var logits = single.Forward(tokens.AsSpan(t, 1));
            for (int v = 0; v < vocab; v++)
            {
                Assert.True(Math.Abs(all[t * vocab + v] - expected[t][v]) < 1e-4, $"{arch} token {t} logit {v}: prefill {all[t * vocab + v]}, reference {expected[t][v]}");
                Assert.True(Math.Abs(logits[v] - expected[t][v]) < 1e-4, $"{arch} token {t} logit {v}: decode {logits[v]}, reference {expected[t][v]}");
            }
        }
    }

    [Theory, MemberData(nameof(Families))]
    public void A_hugging_face_folder_gives_the_gguf_logits(string arch)
    {
        string path = ModelPath(arch), folder = Path.Combine(Shared.TempDir(), arch);
        MoeHfFolder.Write(path, folder);
        var tokens = Prompt(12);
        using var gguf = ModelLoader.Load(path);
        using var hf = ModelLoader.Load(folder);
        Assert.Equal(gguf.Config.Experts, hf.Config.Experts);
        int vocab = gguf.Config.VocabSize;
        var expected = new float[tokens.Length * vocab];
        var actual = new float[tokens.Length * vocab];
        using (var s = gguf.CreateSession(32)) s.Forward(tokens, expected);
        using (var s = hf.CreateSession(32)) s.Forward(tokens, actual);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-4, $"{arch} logit {i}: folder {actual[i]}, GGUF {expected[i]}");
    }

    /// <summary>
    /// llama.cpp's numbers for the tiny GGUF files (<see cref="ModelPath"/>) on the first 6000 characters of
    /// <see cref="TinyMoe.Text"/>, n_ctx 128, n_batch 128: the running perplexity after each window as llama-perplexity
    /// prints it, and the argmax at window 1's 63 scored positions (from its --kl-divergence-base logits file).
    /// Mainline llama.cpp (a snapshot printing "build: unknown (0)") for llama with experts, qwen2moe and olmoe;
    /// ik_llama.cpp for qwen3moe, which that snapshot predates. CPU builds, -t 2.
    /// </summary>
    private static readonly Dictionary<string, (double[] Running, int[] Greedy)> LlamaCpp = new()
    {
        ["llama"] = ([134.9769, 132.6039, 135.2834, 134.4910, 133.2182, 137.2047, 138.5326, 136.6385, 137.0438, 135.5539, 136.5735, 135.2309, 134.4041, 133.1171, 131.2686, 131.4604, 131.0406, 129.6234, 128.1185, 128.5984, 129.6219, 128.4436, 128.4353, 129.7088],
            [426, 419, 432, 280, 426, 413, 419, 276, 412, 276, 426, 414, 426, 414, 426, 426, 426, 412, 412, 414, 261, 419, 426, 426, 426, 414, 411, 412, 414, 414, 265, 412, 412, 414, 413, 426, 261, 261, 265, 413, 412, 412, 412, 261, 414, 412, 261, 412, 426, 412, 262, 432, 411, 410, 265, 411, 419, 426, 426, 265, 412, 412, 426]),
        ["qwen2moe"] = ([170.8606, 169.9788, 181.4929, 176.7614, 174.1146, 178.9447, 180.2556, 176.7895, 177.6859, 175.9747, 176.1820, 174.9633, 174.1112, 171.9680, 170.2658, 171.3213, 171.2750, 170.4089, 168.9056, 168.6896, 170.1286, 169.6092, 169.5956, 170.7387],
            [426, 429, 429, 412, 413, 413, 410, 420, 413, 412, 412, 419, 426, 426, 413, 412, 413, 413, 412, 419, 412, 429, 426, 426, 412, 417, 412, 426, 413, 413, 413, 426, 429, 412, 261, 412, 412, 429, 412, 432, 419, 413, 411, 412, 426, 413, 413, 412, 412, 412, 412, 429, 420, 276, 412, 412, 429, 413, 413, 432, 419, 429, 412]),
        ["qwen3moe"] = ([130.8890, 134.3191, 142.2810, 138.4454, 137.3926, 141.6233, 141.2515, 135.7470, 134.4757, 133.3386, 132.8213, 129.9768, 127.8821, 125.6816, 123.9036, 124.6247, 124.2169, 122.2126, 120.0946, 120.0122, 122.1157, 121.0315, 121.1188, 122.0894],
            [419, 419, 419, 419, 412, 410, 419, 426, 419, 419, 419, 426, 419, 419, 426, 419, 419, 419, 261, 419, 426, 419, 426, 426, 261, 419, 419, 419, 412, 412, 419, 426, 419, 419, 419, 426, 410, 269, 419, 419, 426, 419, 261, 410, 419, 426, 276, 426, 426, 419, 419, 419, 412, 419, 419, 419, 419, 412, 412, 419, 426, 419, 419]),
        ["olmoe"] = ([117.4422, 119.0882, 131.6908, 129.6981, 124.8210, 132.0748, 132.4008, 128.1811, 128.2803, 125.5370, 125.6889, 121.8952, 119.4583, 117.2834, 115.0466, 116.0851, 116.5427, 114.4264, 111.9351, 111.8445, 114.1811, 113.1199, 113.4531, 115.3500],
            [426, 411, 419, 426, 419, 411, 426, 426, 426, 426, 419, 411, 411, 411, 411, 419, 426, 426, 426, 426, 419, 411, 411, 411, 419, 426, 426, 411, 419, 419, 411, 426, 426, 426, 426, 426, 411, 426, 426, 419, 426, 426, 426, 419, 411, 426, 426, 419, 419, 411, 411, 419, 426, 426, 426, 426, 411, 419, 419, 432, 426, 426, 419]),
    };

    [Theory, MemberData(nameof(Families))]
    public void Gguf_gives_llama_cpp_perplexity_per_window_and_greedy_ids(string arch)
    {
        var expected = LlamaCpp[arch];
        string dir = Shared.TempDir(), text = Path.Combine(dir, "text.txt");
        File.WriteAllText(text, PriorText.Value[..6000]);
        using var model = ModelLoader.Load(ModelPath(arch));
        var ids = Evaluation.Perplexity.TokenizeForEvaluation(model.Tokenizer!, text, null, Evaluation.WindowMethod.LlamaCpp);
        var r = Evaluation.Perplexity.Evaluate(model, null, ids, 128, Evaluation.WindowMethod.LlamaCpp);
        Assert.Equal(expected.Running.Length, r.RunningPerplexity.Count);
        for (int w = 0; w < expected.Running.Length; w++)
            Assert.True(Math.Abs(r.RunningPerplexity[w] / expected.Running[w] - 1) < 1e-3,
                $"{arch} window {w + 1}: {r.RunningPerplexity[w]:F4}, llama.cpp {expected.Running[w]:F4}");
        // Greedy ids of window 1's scored positions (64..126), its first token replaced by BOS as llama.cpp does.
        using var session = model.CreateSession(128);
        var window = ids[..127].ToArray();
        window[0] = 1;
        int vocab = model.Config.VocabSize;
        var logits = new float[window.Length * vocab];
        session.Forward(window, logits);
        var greedy = Enumerable.Range(64, 63).Select(t => Sampler.ArgMax(logits.AsSpan(t * vocab, vocab))).ToArray();
        Assert.Equal(expected.Greedy, greedy);
    }

    public static TheoryData<string, string> HostileConfigs() => new()
    {
        { "experts0", "expert count 0" },
        { "used>count", "experts used per token 9 must be between 1 and the expert count 8" },
        { "shapes", "ffn_up_exps" },
    };

    /// <summary>Expert counts and shapes a file can get wrong are one-line errors naming the file, with a non-zero exit.</summary>
    [Theory, MemberData(nameof(HostileConfigs))]
    public void Hostile_expert_configs_are_one_line_errors(string hostility, string message)
    {
        var m = hostility switch
        {
            "experts0" => TinyMoe.Qwen3Moe with { WrittenExpertCount = 0 },
            "used>count" => TinyMoe.Qwen3Moe with { Used = 9 },
            _ => TinyMoe.Qwen3Moe with { UpFfnDelta = 8 },
        };
        string path = Path.Combine(Shared.TempDir(), "hostile.gguf");
        m.Write(path, PriorText.Value[..2000]);
        var r = CliRunner.Run("run", "--model", path, "--prompt", "Once", "-n", "4");
        Assert.NotEqual(0, r.ExitCode);
        string error = r.Stderr.Trim();
        Assert.DoesNotContain('\n', error);
        Assert.Contains(message, error);
        Assert.Contains("hostile.gguf", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Inspect_shows_the_experts_and_the_active_parameters()
    {
        var m = TinyMoe.Qwen2Moe;
        var r = CliRunner.Run("inspect", "--model", ModelPath("qwen2moe"), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var experts = root.GetProperty("experts");
        Assert.Equal(m.Experts, experts.GetProperty("count").GetInt32());
        Assert.Equal(m.Used, experts.GetProperty("used").GetInt32());
        Assert.Equal(m.SharedFfn, experts.GetProperty("shared_ffn_size").GetInt32());
        // Each layer's gate, up and down experts: 3 · E · Fe · D weights, of which a token runs k/E.
        long expertWeights = 3L * m.Layers * m.Experts * m.ExpertFfn * m.Hidden;
        Assert.Equal(root.GetProperty("parameters").GetInt64() - expertWeights / m.Experts * (m.Experts - m.Used), root.GetProperty("active_parameters").GetInt64());
    }

    /// <summary>
    /// Quantized experts run packed on the integer kernels, each expert a slice of the 3-D tensor: the fast kernels give
    /// the scalar reference kernels' perplexity to the last bit, in prefill chunks that group tokens by expert.
    /// </summary>
    [Theory]
    [InlineData("qwen3moe", "q8_0")]
    [InlineData("olmoe", "q4_0")]
    public void Quantized_experts_give_the_reference_kernels_perplexity(string arch, string format)
    {
        string file = Path.Combine(Shared.TempDir(), $"{arch}-{format}.gguf");
        var (plan, input) = Quantization.ModelQuantizer.Plan(ModelPath(arch), new Quantization.QuantizeOptions { Format = format });
        using (input) Quantization.ModelQuantizer.Write(plan, file);
        using var fast = ModelLoader.Load(file, new LoadOptions { Kernels = Kernels.Quantized.KernelMode.Fast });
        using var reference = ModelLoader.Load(file, new LoadOptions { Kernels = Kernels.Quantized.KernelMode.Reference });
        Assert.NotNull(fast.Weights.Layers[0].Experts!.Gate[0].Packed);
        Assert.Equal(Family(arch).Experts, fast.Weights.Layers[0].Experts!.Down.Length);
        var ids = Prompt(96);
        double a = Evaluation.Perplexity.Evaluate(fast, ids, 95).Perplexity;
        double b = Evaluation.Perplexity.Evaluate(reference, ids, 95).Perplexity;
        Assert.Equal(b, a);
    }

    [Fact]
    public void Dense_layers_among_expert_layers_are_a_one_line_error()
    {
        string folder = Path.Combine(Shared.TempDir(), "qwen2moe");
        MoeHfFolder.Write(ModelPath("qwen2moe"), folder);
        string config = Path.Combine(folder, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).TrimEnd('}') + ",\"mlp_only_layers\":[1]}");
        var r = CliRunner.Run("run", "--model", folder, "--prompt", "Once", "-n", "2");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("config.json", r.Stderr);
        Assert.Contains("mlp_only_layers", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    /// <summary>
    /// imatrix of an MoE model: entries for the linears its layers have (no dense ffn_gate/up/down), and each expert
    /// tensor's entry holds one slice per expert, the mean x² over that expert's routed tokens, as llama-quantize reads it.
    /// </summary>
    [Fact]
    public void Imatrix_of_experts_holds_each_experts_routed_statistics()
    {
        using var model = ModelLoader.Load(ModelPath("qwen3moe"));
        var stats = Quantization.Calibration.ActivationStatistics.Collect(model, [Prompt(48)]);
        string path = Path.Combine(Shared.TempDir(), "imatrix.gguf");
        Quantization.Methods.ImportanceMatrix.Write(stats, model.Config, path, "t");
        var read = Quantization.Methods.ImportanceMatrix.Read(path);
        Assert.DoesNotContain("blk.0.ffn_gate.weight", read.Keys);
        Assert.Contains("blk.0.attn_q.weight", read.Keys);
        int experts = model.Config.Experts!.Count, d = model.Config.HiddenSize, f = model.Config.Experts.FfnSize;
        foreach (var (name, input, width) in new[] { ("ffn_up_exps", LinearInput.FeedForward, d), ("ffn_down_exps", LinearInput.FeedForwardDown, f) })
        {
            var values = read[$"blk.1.{name}.weight"];
            Assert.Equal(experts * width, values.Length);
            for (int e = 0; e < experts; e++)
            {
                var x = stats.ForExpert(1, input, e);
                for (int i = 0; i < width; i++)
                {
                    double expected = x is null ? 1 : x.SumSquares[i] / x.Tokens;
                    Assert.True(Math.Abs(values[e * width + i] - expected) <= 1e-5 * Math.Max(1, expected), $"{name} expert {e} column {i}: {values[e * width + i]} vs {expected}");
                }
            }
        }
    }
}
