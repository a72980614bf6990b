using System.Text.RegularExpressions;
using AnyBit.Evaluation;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Quantization;

namespace AnyBit.Tests.Experts;

/// <summary>
/// gpt-oss on a tiny seeded model (<see cref="TinyMoe.GptOss"/>): attention sinks, the alternating sliding window,
/// YaRN, biases, SOFTMAX_WEIGHT routing and the clamped SwiGLU against a float64 forward from the definitions
/// (<see cref="MoeReference"/>); the Hugging Face folder (transformers' names, interleaved <c>gate_up_proj</c>) against
/// the GGUF file; the file and its MXFP4-expert quantization against ik_llama.cpp's per-window perplexity and greedy
/// ids, measured out of CI.
/// </summary>
public class GptOssTests
{
    private static readonly Lazy<string> PriorText = new(() => File.ReadAllText(TinyMoe.Text));
    /// <summary>The text perplexity is measured on: the start of the prior's text.</summary>
    private static string EvalText => PriorText.Value[..4000];

    private static readonly Lazy<string> Dir = new(() => Shared.TempDir());
    private static readonly Lazy<string> F32 = new(() =>
    {
        string path = Path.Combine(Dir.Value, "tiny-gpt-oss.gguf");
        TinyMoe.GptOss.Write(path, PriorText.Value);
        return path;
    });
    /// <summary>The same model with its expert matrices quantized to MXFP4 by AnyBit's quantize (everything else f32).</summary>
    private static readonly Lazy<string> Mxfp4 = new(() =>
    {
        string path = Path.Combine(Dir.Value, "tiny-gpt-oss-mxfp4.gguf");
        QuantizeExpertsToMxfp4(F32.Value, path);
        return path;
    });

    internal static void QuantizeExpertsToMxfp4(string input, string output)
    {
        var options = new QuantizeOptions { Format = "f32", TensorTypes = [(new Regex(@"_exps\.weight$"), "mxfp4")] };
        var (plan, files) = ModelQuantizer.Plan(input, options);
        using (files) ModelQuantizer.Write(plan, output);
    }

    private static void AssertReferenceLogits(string path, KernelMode kernels)
    {
        var tokens = MoeModelTests.Prompt(24);
        double[][] expected;
        using (var g = GgufFile.Open(path)) expected = new MoeReference(g).Logits(tokens);
        using var model = ModelLoader.Load(path, new LoadOptions { Kernels = kernels });
        int vocab = model.Config.VocabSize;
        // The prompt in chunks of 5, then token by token: both cross the window of 8 on the even layers.
        var all = new float[tokens.Length * vocab];
        using (var chunked = model.CreateSession(64, maxBatch: 5)) chunked.Forward(tokens, all);
        using var single = model.CreateSession(64, maxBatch: 1);
        double worst = 0;
        for (int t = 0; t < tokens.Length; t++)
        {
            var logits = single.Forward(tokens.AsSpan(t, 1));
            for (int v = 0; v < vocab; v++)
                worst = Math.Max(worst, Math.Max(Math.Abs(all[t * vocab + v] - expected[t][v]), Math.Abs(logits[v] - expected[t][v])));
        }
        Assert.True(worst < 1e-4, $"{Path.GetFileName(path)}: max logit difference {worst:E2} from the float64 reference");
    }

    [Fact]
    public void Logits_equal_a_float64_forward_from_the_definition()
    {
        using (var model = ModelLoader.Load(F32.Value))
        {
            var c = model.Config;
            Assert.Same(Architecture.GptOss, c.Architecture);
            Assert.Equal(ExpertGating.SoftmaxWeight, c.Experts!.Gating);
            Assert.Equal(7f, c.Experts.SwigluLimit);
            Assert.Equal(RopeScalingType.Yarn, c.Rope.Scaling);
            Assert.True(c.IsSlidingLayer(0) && !c.IsSlidingLayer(1) && c.IsSlidingLayer(2));
            Assert.NotNull(model.Weights.Layers[0].AttnSinks);
        }
        AssertReferenceLogits(F32.Value, KernelMode.Fast);
    }

    [Fact]
    public void Mxfp4_experts_stay_packed_and_give_the_reference_logits_of_their_values()
    {
        using (var model = ModelLoader.Load(Mxfp4.Value))
        {
            var experts = model.Weights.Layers[0].Experts!;
            Assert.All(experts.Gate.Concat(experts.Up).Concat(experts.Down), w => Assert.NotNull(w.Packed));
            Assert.Equal("MXFP4", experts.Gate[0].StoredType);
        }
        // The reference reads the MXFP4 blocks' values; float32 kernels run exactly those values.
        AssertReferenceLogits(Mxfp4.Value, KernelMode.Float32);
    }

    [Fact]
    public void A_hugging_face_folder_gives_the_gguf_logits()
    {
        foreach (var (gguf, name) in new[] { (F32.Value, "hf"), (Mxfp4.Value, "hf-mxfp4") })
        {
            string folder = Path.Combine(Dir.Value, name);
            MoeHfFolder.Write(gguf, folder);
            var tokens = MoeModelTests.Prompt(12);
            using var g = ModelLoader.Load(gguf);
            using var hf = ModelLoader.Load(folder);
            Assert.Equal(g.Config.Experts, hf.Config.Experts);
            Assert.Equal(g.Config.Rope, hf.Config.Rope);
            int vocab = g.Config.VocabSize;
            var expected = new float[tokens.Length * vocab];
            var actual = new float[tokens.Length * vocab];
            using (var s = g.CreateSession(32)) s.Forward(tokens, expected);
            using (var s = hf.CreateSession(32)) s.Forward(tokens, actual);
            double worst = 0;
            for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
            Assert.True(worst < 1e-4, $"{name}: max logit difference {worst:E2} from the GGUF file");
        }
    }

    /// <summary>
    /// ik_llama.cpp's numbers for the tiny files and <see cref="EvalText"/>, n_ctx 64, n_batch 64 (<c>llama-perplexity
    /// -m tiny-gpt-oss-f32.gguf -f text.txt -c 64 -b 64 -t 2 --kl-divergence-base f32.kld</c>): the running perplexity
    /// after each window ([1]…, [2]…), and the argmax of window 1's scored positions (from the logits file). Measured
    /// with ik_llama.cpp (CPU build, "build: 0 (unknown)"; the mainline snapshot predates gpt-oss) on the files of
    /// <see cref="Tiny_model_files_for_ik_llama_cpp"/>. "mxfp4-values" is ik_llama.cpp on its own F32 dequantization of
    /// the MXFP4 file (<c>llama-quantize --allow-requantize … F32</c>): the MXFP4 run itself quantizes activations to
    /// 8 bits in its expert products, which moves window 1 by 0.5 % on this tiny router (its greedy ids are the same).
    /// </summary>
    private static readonly double[] IkF32 = [142.7899, 137.8142, 139.1306, 142.8141, 143.7546, 143.6155, 142.7800, 145.3214, 144.6663, 143.9060, 147.2782, 149.0795, 150.4745, 151.2776, 151.1605, 150.1098, 150.7624, 150.6876, 149.6691, 149.0527, 149.9675, 148.8209, 148.3362, 146.1824, 145.8953, 144.4500, 143.5358, 142.7531, 142.3506, 142.1015, 141.8020, 141.6122];
    private static readonly int[] IkF32Greedy = [412, 426, 411, 276, 426, 276, 426, 412, 412, 412, 426, 426, 412, 265, 411, 426, 426, 426, 426, 412, 266, 265, 426, 426, 412, 284, 426, 261, 426, 426, 426];
    private static readonly double[] IkMxfp4Values = [136.9828, 134.3833, 136.4962, 140.4939, 142.5986, 142.8884, 142.2545, 144.5878, 144.4370, 143.7295, 146.7255, 149.1405, 150.3774, 151.2799, 150.8145, 149.8956, 150.5715, 150.2610, 149.2539, 148.8670, 149.7980, 148.5655, 147.8024, 145.7975, 145.3012, 143.6139, 142.5028, 141.7045, 141.3931, 141.1132, 140.9420, 140.7103];
    private static readonly double[] IkMxfp4 = [136.3328, 134.0455, 136.3837, 140.3910, 142.4882, 142.8747, 142.1073, 144.4460, 144.3129, 143.6241, 146.6933, 149.1233, 150.3351, 151.2623, 150.8114, 149.8926, 150.5580, 150.2483, 149.2440, 148.8619, 149.7847, 148.5553, 147.7879, 145.7670, 145.2652, 143.5655, 142.4534, 141.6459, 141.3284, 141.0514, 140.8850, 140.6594];
    private static readonly int[] IkMxfp4Greedy = [412, 426, 426, 426, 426, 276, 426, 412, 412, 265, 426, 426, 412, 359, 426, 426, 426, 426, 426, 412, 412, 412, 426, 426, 412, 426, 426, 261, 426, 426, 426];

    private static (IReadOnlyList<double> Running, int[] Greedy) Evaluate(string path, KernelMode kernels)
    {
        string text = Path.Combine(Dir.Value, "text.txt");
        File.WriteAllText(text, EvalText);
        using var model = ModelLoader.Load(path, new LoadOptions { Kernels = kernels });
        var ids = Perplexity.TokenizeForEvaluation(model.Tokenizer!, text, null, WindowMethod.LlamaCpp);
        return (Perplexity.Evaluate(model, null, ids, 64, WindowMethod.LlamaCpp).RunningPerplexity, Greedy(model, ids));
    }

    private static void AssertWindows(string what, IReadOnlyList<double> actual, double[] expected, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (int w = 0; w < expected.Length; w++)
            Assert.True(Math.Abs(actual[w] / expected[w] - 1) < tolerance, $"{what} window {w + 1}: {actual[w]:F4}, ik_llama.cpp {expected[w]:F4}");
    }

    [Fact]
    public void Gguf_gives_ik_llama_cpp_perplexity_per_window_and_greedy_ids()
    {
        var (running, greedy) = Evaluate(F32.Value, KernelMode.Fast);
        AssertWindows("f32", running, IkF32, 1e-3);
        Assert.Equal(IkF32Greedy, greedy);
    }

    [Fact]
    public void Mxfp4_experts_give_ik_llama_cpp_perplexity_per_window_and_greedy_ids()
    {
        // The MXFP4 values exactly (float activations): ik_llama.cpp on the same values, window by window, and its ids.
        var (running, greedy) = Evaluate(Mxfp4.Value, KernelMode.Float32);
        AssertWindows("mxfp4 values", running, IkMxfp4Values, 1e-3);
        Assert.Equal(IkMxfp4Greedy, greedy);
        // The packed experts on the integer kernels: ik_llama.cpp's MXFP4 run, each with its own 8-bit activations.
        (running, _) = Evaluate(Mxfp4.Value, KernelMode.Fast);
        Assert.True(Math.Abs(running[^1] / IkMxfp4[^1] - 1) < 1e-3, $"mxfp4 final {running[^1]:F4}, ik_llama.cpp {IkMxfp4[^1]:F4}");
        AssertWindows("mxfp4", running, IkMxfp4, 1e-2);
    }

    /// <summary>Argmax of window 1's scored positions (32..62 predict tokens 33..63), BOS first as llama-perplexity feeds it.</summary>
    private static int[] Greedy(Transformer model, int[] ids)
    {
        int vocab = model.Config.VocabSize;
        using var session = model.CreateSession(64);
        var window = ids[..63].ToArray();
        window[0] = model.Config.BosTokenId ?? window[0];
        var logits = new float[window.Length * vocab];
        session.Forward(window, logits);
        return Enumerable.Range(32, 31).Select(t =>
        {
            var row = logits.AsSpan(t * vocab, vocab);
            int best = 0;
            for (int i = 1; i < vocab; i++) if (row[i] > row[best]) best = i;
            return best;
        }).ToArray();
    }

    /// <summary>
    /// Out of CI: with ANYBIT_TINY_GPTOSS_DIR set, writes the tiny files (f32 and MXFP4 experts), the Hugging Face
    /// folder and the text there, with AnyBit's running perplexity and greedy ids beside them, for llama-perplexity.
    /// </summary>
    [Fact]
    public void Tiny_model_files_for_ik_llama_cpp()
    {
        if (Environment.GetEnvironmentVariable("ANYBIT_TINY_GPTOSS_DIR") is not { Length: > 0 } dir) return;
        Directory.CreateDirectory(dir);
        string text = Path.Combine(dir, "text.txt");
        File.WriteAllText(text, EvalText);
        foreach (var (variant, source) in new[] { ("f32", F32.Value), ("mxfp4", Mxfp4.Value) })
        {
            string path = Path.Combine(dir, $"tiny-gpt-oss-{variant}.gguf");
            File.Copy(source, path, true);
            MoeHfFolder.Write(path, Path.Combine(dir, $"hf-{variant}"));
            foreach (var kernels in new[] { KernelMode.Fast, KernelMode.Float32 })
            {
                using var model = ModelLoader.Load(path, new LoadOptions { Kernels = kernels });
                var ids = Perplexity.TokenizeForEvaluation(model.Tokenizer!, text, null, WindowMethod.LlamaCpp);
                var r = Perplexity.Evaluate(model, null, ids, 64, WindowMethod.LlamaCpp);
                File.WriteAllText(Path.Combine(dir, $"{variant}.{kernels}.anybit.txt"),
                    $"tokens {ids.Length}\n{string.Join(",", r.RunningPerplexity.Select((p, i) => $"[{i + 1}]{p:F4}"))}\ngreedy {string.Join(",", Greedy(model, ids))}\n");
            }
        }
    }
}
