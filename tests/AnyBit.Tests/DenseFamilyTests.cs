using AnyBit.Evaluation;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// Gemma 2, Gemma 3 and Phi-3 on tiny seeded models (<see cref="TinyDenseModel"/>): the GGUF file and the Hugging Face
/// folder give the float64 reference's logits, and the GGUF file gives llama.cpp's per-window perplexity and greedy
/// ids, measured out of CI on the same files.
/// </summary>
public class DenseFamilyTests
{
    public static TheoryData<string> Families() => new(["gemma2", "gemma3", "phi3"]);

    private static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "anybit-dense-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Ids of the text's first characters, as the tiny vocabulary tokenizes them (BOS first).</summary>
    private static int[] Ids(int count) => [1, .. TinyDenseModel.Text().Take(count - 1).Select(TinyDenseModel.TokenOf)];

    [Theory, MemberData(nameof(Families))]
    public void Gguf_and_hf_folder_give_the_float64_reference_logits(string family)
    {
        var m = TinyDenseModel.Create(family);
        string dir = TempDir();
        try
        {
            var ids = Ids(40);
            var reference = m.ReferenceLogits(ids);
            string gguf = Path.Combine(dir, "m.gguf"), folder = Path.Combine(dir, "hf");
            m.WriteGguf(gguf);
            m.WriteHfFolder(folder);
            foreach (string path in new[] { gguf, folder })
            {
                using var model = ModelLoader.Load(path);
                Assert.Equal(family, model.Config.Architecture.Name);
                using var session = model.CreateSession(64);
                var logits = new float[ids.Length * TinyDenseModel.Vocab];
                session.Forward(ids, logits);
                double worst = 0;
                for (int t = 0; t < ids.Length; t++)
                    for (int v = 0; v < TinyDenseModel.Vocab; v++)
                        worst = Math.Max(worst, Math.Abs(logits[t * TinyDenseModel.Vocab + v] - reference[t][v]));
                Assert.True(worst < 1e-4, $"{family} {Path.GetFileName(path)}: max logit difference {worst:E2} from the float64 reference");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// llama.cpp's numbers for the tiny GGUF files and <see cref="TinyDenseModel.Text"/>, n_ctx 64, n_batch 64:
    /// the running perplexity after each window as llama-perplexity prints it ([1]…, [2]…), and the argmax of the
    /// scored positions of window 1 (from its --kl-divergence-base logits file). Measured with mainline llama.cpp
    /// (gemma2, phi3; a snapshot without gemma3, "build: 0 (unknown)") and ik_llama.cpp (gemma3), CPU builds, -t 1 or 2; see
    /// <c>Tiny_model_files_for_llama_cpp</c> for how the files are written.
    /// </summary>
    private static readonly Dictionary<string, (double[] Running, int[] Greedy)> LlamaCpp = new()
    {
        ["gemma2"] = ([38.8502, 40.0240, 39.8487, 36.9859, 35.4553, 35.9012, 35.9016, 34.6888, 34.3017, 35.3703, 36.7341, 37.3018, 37.7183, 38.3212, 38.5025, 38.6013, 38.7648, 39.1989, 39.1453, 39.0816, 38.8012],
            [114, 259, 118, 104, 100, 113, 118, 120, 259, 104, 259, 104, 104, 259, 104, 102, 259, 111, 118, 114, 102, 114, 107, 100, 108, 113, 100, 100, 108, 259, 112]),
        ["gemma3"] = ([267.7622, 205.1526, 202.7198, 188.7636, 162.9171, 161.9069, 168.3948, 162.5225, 168.9483, 185.5286, 195.0086, 200.7663, 204.5361, 208.8418, 209.0613, 209.9949, 208.0056, 206.9745, 211.2547, 210.7950, 207.3925],
            [114, 259, 118, 104, 100, 113, 118, 120, 259, 104, 259, 104, 104, 259, 104, 102, 259, 111, 118, 114, 102, 114, 107, 100, 108, 113, 100, 100, 108, 259, 112]),
        ["phi3"] = ([42.0208, 41.9568, 39.1566, 39.7476, 37.4685, 37.5915, 37.6227, 37.2064, 37.0451, 37.0271, 37.7489, 37.8631, 37.1439, 36.8329, 36.8136, 36.7243, 36.8897, 36.7549, 36.8407, 37.2636, 37.1042],
            [114, 259, 259, 259, 100, 259, 111, 100, 259, 114, 114, 114, 114, 108, 114, 100, 108, 114, 259, 102, 259, 114, 117, 259, 108, 108, 259, 259, 259, 108, 259]),
    };

    [Theory, MemberData(nameof(Families))]
    public void Gguf_gives_llama_cpp_perplexity_per_window_and_greedy_ids(string family)
    {
        if (!LlamaCpp.TryGetValue(family, out var expected)) return;
        var m = TinyDenseModel.Create(family);
        string dir = TempDir();
        try
        {
            string gguf = Path.Combine(dir, "m.gguf"), text = Path.Combine(dir, "text.txt");
            m.WriteGguf(gguf);
            File.WriteAllText(text, TinyDenseModel.Text());
            using var model = ModelLoader.Load(gguf);
            var ids = Perplexity.TokenizeForEvaluation(model.Tokenizer!, text, null, WindowMethod.LlamaCpp);
            var r = Perplexity.Evaluate(model, null, ids, 64, WindowMethod.LlamaCpp);
            Assert.Equal(expected.Running.Length, r.RunningPerplexity.Count);
            for (int w = 0; w < expected.Running.Length; w++)
                Assert.True(Math.Abs(r.RunningPerplexity[w] / expected.Running[w] - 1) < 1e-3,
                    $"{family} window {w + 1}: {r.RunningPerplexity[w]:F4}, llama.cpp {expected.Running[w]:F4}");
            // Greedy ids of window 1's scored positions (32..62 predict tokens 33..63).
            using var session = model.CreateSession(64);
            var window = ids[..63].ToArray();
            window[0] = 1;
            var logits = new float[window.Length * TinyDenseModel.Vocab];
            session.Forward(window, logits);
            var greedy = Enumerable.Range(32, 31).Select(t => Sampler.ArgMax(logits.AsSpan(t * TinyDenseModel.Vocab, TinyDenseModel.Vocab))).ToArray();
            Assert.Equal(expected.Greedy, greedy);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// Out of CI: with ANYBIT_TINY_DENSE_DIR set, writes the tiny GGUF files, their Hugging Face folders and the text
    /// there, for llama-perplexity (<c>-m gemma2.gguf -f text.txt -c 64 -b 64 --kl-divergence-base gemma2.kld</c>).
    /// </summary>
    [Fact]
    public void Tiny_model_files_for_llama_cpp()
    {
        if (Environment.GetEnvironmentVariable("ANYBIT_TINY_DENSE_DIR") is not { Length: > 0 } dir) return;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "text.txt"), TinyDenseModel.Text());
        foreach (string family in new[] { "gemma2", "gemma3", "phi3" })
        {
            var m = TinyDenseModel.Create(family);
            m.WriteGguf(Path.Combine(dir, family + ".gguf"));
            m.WriteHfFolder(Path.Combine(dir, family + "-hf"));
            using var model = ModelLoader.Load(Path.Combine(dir, family + ".gguf"));
            var ids = Perplexity.TokenizeForEvaluation(model.Tokenizer!, Path.Combine(dir, "text.txt"), null, WindowMethod.LlamaCpp);
            var r = Perplexity.Evaluate(model, null, ids, 64, WindowMethod.LlamaCpp);
            File.WriteAllText(Path.Combine(dir, family + ".anybit.txt"),
                $"tokens {ids.Length}\n{string.Join(",", r.RunningPerplexity.Select((p, i) => $"[{i + 1}]{p:F4}"))}\n");
        }
    }

    [Fact]
    public void Bad_longrope_factors_are_a_one_line_error_naming_the_config()
    {
        var m = TinyDenseModel.Create("phi3");
        string dir = TempDir();
        try
        {
            m.ShortFactors = m.ShortFactors[..3];
            m.WriteHfFolder(dir);
            var e = Assert.Throws<InvalidModelFileException>(() => ModelLoader.Load(dir));
            Assert.Contains("config.json", e.Message);
            Assert.Contains("LongRoPE", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
