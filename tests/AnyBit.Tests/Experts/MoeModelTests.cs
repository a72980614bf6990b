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
}
