using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>The six tiny Hugging Face fixtures: logits and greedy ids exactly as transformers computed them.</summary>
public class FixtureModelTests
{
    public static TheoryData<string> Models => new() { "llama2-sp", "llama3-bpe", "qwen2-bpe", "qwen3-bpe", "mistral-sp", "bitnet-bpe" };

    internal static float MaxRelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        float maxAbs = 0, maxErr = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxAbs = MathF.Max(maxAbs, MathF.Abs(expected[i]));
            maxErr = MathF.Max(maxErr, MathF.Abs(actual[i] - expected[i]));
        }
        return maxErr / maxAbs;
    }

    internal static float[] AllLogits(Transformer model, int[] ids)
    {
        using var session = model.CreateSession(Math.Max(ids.Length, 16));
        var logits = new float[ids.Length * model.Config.VocabSize];
        session.Forward(ids, logits);
        return logits;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Logits_match_transformers(string name)
    {
        string folder = Shared.Fixture("models", name);
        string reference = Path.Combine(folder, "reference.safetensors");
        var ids = Shared.ReadI32(reference, "input_ids");
        // For BitNet the plain forward ("logits") is the float-activation path.
        using var model = ModelLoader.Load(folder, new LoadOptions { FloatReference = true });
        var expected = Shared.ReadF32(reference, "logits");
        float err = MaxRelativeError(AllLogits(model, ids), expected);
        Assert.True(err < 1e-3f, $"{name}: max error {err:E3} of the largest logit");
    }

    [Fact]
    public void BitNet_int8_activation_logits_match()
    {
        string folder = Shared.Fixture("models", "bitnet-bpe");
        string reference = Path.Combine(folder, "reference.safetensors");
        var ids = Shared.ReadI32(reference, "input_ids");
        using var model = ModelLoader.Load(folder);
        Assert.Equal(ActivationMode.Int8PerToken, model.Activations);
        float err = MaxRelativeError(AllLogits(model, ids), Shared.ReadF32(reference, "logits_w158a8"));
        Assert.True(err < 1e-3f, $"max error {err:E3} of the largest logit");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Greedy_ids_match_generate(string name)
    {
        string folder = Shared.Fixture("models", name);
        string reference = Path.Combine(folder, "reference.safetensors");
        var prompt = Shared.ReadI32(reference, "greedy_prompt");
        var expected = Shared.ReadI32(reference, "greedy_ids");
        using var model = ModelLoader.Load(folder, new LoadOptions { FloatReference = true });
        var generated = Generator.Greedy(model, prompt, expected.Length - prompt.Length, stopAtEos: false);
        Assert.Equal(expected, prompt.Concat(generated).ToArray());
    }
}
