using System.Text.Json;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>The trained models in ../shared/data: reference logits, greedy continuations and the stories260K story.</summary>
public class RealModelTests
{
    private static string Gutenberg(string name) => Shared.Data("models", name);

    [Fact]
    public void Gutenberg_llama_logits_match()
    {
        string reference = Path.Combine(Gutenberg("gutenberg-llama"), "reference.safetensors");
        using var model = ModelLoader.Load(Gutenberg("gutenberg-llama"));
        var ids = Shared.ReadI32(reference, "input_ids");
        float err = FixtureModelTests.MaxRelativeError(FixtureModelTests.AllLogits(model, ids), Shared.ReadF32(reference, "logits"));
        Assert.True(err < 1e-3f, $"max error {err:E3} of the largest logit");
    }

    /// <summary>The reference greedy continuation; BitNet's comes from its as-trained (int8 activation) path.</summary>
    [Theory]
    [InlineData("gutenberg-llama")]
    [InlineData("gutenberg-bitnet")]
    public void Gutenberg_greedy_matches(string name)
    {
        string reference = Path.Combine(Gutenberg(name), "reference.safetensors");
        using var model = ModelLoader.Load(Gutenberg(name));
        var prompt = Shared.ReadI32(reference, "greedy_prompt");
        var expected = Shared.ReadI32(reference, "greedy_ids");
        var got = Generator.Greedy(model, prompt, expected.Length - prompt.Length, stopAtEos: false);
        Assert.Equal(expected, prompt.Concat(got).ToArray());
    }

    [Fact]
    public void Gutenberg_bitnet_ternary_float_logits_match()
    {
        string reference = Path.Combine(Gutenberg("gutenberg-bitnet"), "reference.safetensors");
        using var model = ModelLoader.Load(Gutenberg("gutenberg-bitnet"), new LoadOptions { FloatReference = true });
        var ids = Shared.ReadI32(reference, "input_ids");
        float err = FixtureModelTests.MaxRelativeError(FixtureModelTests.AllLogits(model, ids), Shared.ReadF32(reference, "logits_w158"));
        Assert.True(err < 1e-3f, $"max error {err:E3} of the largest logit");
    }

    /// <summary>Mean negative log-likelihood of ids[1..] under the logits of ids[..^1].</summary>
    internal static double MeanNll(float[] logits, int[] ids, int vocab)
    {
        double total = 0;
        for (int t = 0; t + 1 < ids.Length; t++)
        {
            var row = logits.AsSpan(t * vocab, vocab);
            float max = System.Numerics.Tensors.TensorPrimitives.Max(row);
            double sum = 0;
            foreach (float v in row) sum += Math.Exp(v - max);
            total += -(row[ids[t + 1]] - max - Math.Log(sum));
        }
        return total / (ids.Length - 1);
    }

    [Fact]
    public void Gutenberg_bitnet_as_trained_matches_by_nll_and_argmax()
    {
        string reference = Path.Combine(Gutenberg("gutenberg-bitnet"), "reference.safetensors");
        using var model = ModelLoader.Load(Gutenberg("gutenberg-bitnet"));
        Assert.Equal(ActivationMode.Int8PerToken, model.Activations);
        var ids = Shared.ReadI32(reference, "input_ids");
        var got = FixtureModelTests.AllLogits(model, ids);
        var expected = Shared.ReadF32(reference, "logits_w158a8");
        int v = model.Config.VocabSize;
        double nllGot = MeanNll(got, ids, v), nllExpected = MeanNll(expected, ids, v);
        Assert.True(Math.Abs(nllGot - nllExpected) / nllExpected < 0.005, $"mean NLL {nllGot:F5} vs reference {nllExpected:F5}");
        int agree = 0;
        for (int t = 0; t < ids.Length; t++)
            if (Sampler.ArgMax(got.AsSpan(t * v, v)) == Sampler.ArgMax(expected.AsSpan(t * v, v))) agree++;
        Assert.True(agree >= 255, $"argmax agrees on {agree} of {ids.Length} positions");
    }

    private static (int[] Ids, string Text) StoriesReference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Shared.Data("models", "stories260K", "greedy_reference.json")));
        return (doc.RootElement.GetProperty("greedy_ids_60").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                doc.RootElement.GetProperty("greedy_text").GetString()!);
    }

    [Theory]
    [InlineData("stories260K.gguf", null)]
    [InlineData("stories260K.v1.gguf", null)]
    [InlineData("stories260K.bin", "tok512.bin")]
    public void Stories260K_greedy_story_from_bos(string file, string? tokenizer)
    {
        var (expectedIds, expectedText) = StoriesReference();
        string dir = Shared.Data("models", "stories260K");
        using var model = ModelLoader.Load(Path.Combine(dir, file),
            new LoadOptions { TokenizerPath = tokenizer is null ? null : Path.Combine(dir, tokenizer) });
        Assert.NotNull(model.Tokenizer);
        Assert.Equal(1, model.Tokenizer!.BosId);
        var got = Generator.Greedy(model, [1], expectedIds.Length - 1, stopAtEos: false);
        Assert.Equal(expectedIds, new[] { 1 }.Concat(got).ToArray());
        string text = model.Tokenizer.Decode(got, skipSpecial: true);
        Assert.StartsWith(expectedText.TrimStart(), text);
        // The tokenizer round-trips the story to the same ids.
        Assert.Equal(expectedIds.Take(20), model.Tokenizer.Encode(text).Take(20));
    }

    [Fact]
    public void Stories260K_hf_folder_without_tokenizer_matches()
    {
        var (expectedIds, _) = StoriesReference();
        using var model = ModelLoader.Load(Shared.Data("models", "stories260K", "hf"));
        Assert.Null(model.Tokenizer);
        var got = Generator.Greedy(model, [1], expectedIds.Length - 1, stopAtEos: false);
        Assert.Equal(expectedIds, new[] { 1 }.Concat(got).ToArray());
    }

    [Fact]
    public void Aidreams260K_llama2c_runs_with_its_tokenizer()
    {
        string dir = Shared.Data("models", "aidreams260K");
        using var model = ModelLoader.Load(Path.Combine(dir, "aidreams260K.bin"), new LoadOptions { TokenizerPath = Path.Combine(dir, "tok512.bin") });
        var got = Generator.Greedy(model, [1], 30, stopAtEos: true);
        string text = model.Tokenizer!.Decode(got, skipSpecial: true);
        Assert.True(text.Count(char.IsLetter) > 20, $"expected words, got '{text}'");
    }
}
