using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization;

namespace AnyBit.Tests.Experts;

/// <summary>
/// gutenberg-llama with each feed-forward block split into 4 experts of a quarter of its width: gate and up rows
/// partitioned, down's columns partitioned and multiplied by 4, a zero router (equal probabilities, all 4 experts
/// active). The experts' weighted sum is then the dense block exactly, so the Mixture-of-Experts path must give the
/// dense model's logits.
/// </summary>
public class DenseSplitTests
{
    private static readonly string Dense = Shared.Data("models", "gutenberg-llama");
    private const int Experts = 4;

    /// <summary>Writes the split model as a "llama" GGUF with experts (Mixtral's layout in llama.cpp), float32 weights.</summary>
    internal static void WriteSplit(string dense, string output)
    {
        using var files = ModelLoader.Open(dense);
        var c = files.Config;
        int f = c.IntermediateSize, part = f / Experts, d = c.HiddenSize;
        var split = c with { Experts = new ExpertConfig { Count = Experts, Used = Experts, FfnSize = part, NormalizeWeights = true } };
        var w = new GgufWriter();
        GgufModelMetadata.WriteHyperparameters(w, split, "gutenberg-llama-4x", "llama");
        GgufModelMetadata.WriteTokenizer(w, files.Tokenizer!, split);
        var source = files.Weights;
        void Tensor(string name, long[] shape, Func<float[]> values) =>
            w.AddTensor(name, shape, (uint)TensorType.F32, TensorTypes.ElementCount(shape) * 4, dst =>
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(values().AsSpan()).CopyTo(dst));
        foreach (var (role, layer, name) in TensorRoles.InFileOrder(c.Architecture.Roles, c.NumLayers))
        {
            if (!source.Contains(name)) continue;
            if (role == TensorRoles.FfnGate || role == TensorRoles.FfnUp)
            {
                // Rows [e·part, (e + 1)·part) are expert e's: the 3-D tensor is the same floats.
                string experts = (role == TensorRoles.FfnGate ? TensorRoles.FfnGateExps : TensorRoles.FfnUpExps).GgufName(layer);
                Tensor(experts, [Experts, part, d], () => source.ReadFloat32(name));
            }
            else if (role == TensorRoles.FfnDown)
            {
                Tensor(TensorRoles.FfnGateInp.GgufName(layer), [Experts, d], () => new float[Experts * d]);
                Tensor(TensorRoles.FfnDownExps.GgufName(layer), [Experts, d, part], () =>
                {
                    var down = source.ReadFloat32(name); // [d, f]
                    var result = new float[down.Length];
                    for (int e = 0; e < Experts; e++)
                        for (int r = 0; r < d; r++)
                            for (int j = 0; j < part; j++)
                                result[((long)e * d + r) * part + j] = Experts * down[(long)r * f + e * part + j];
                    return result;
                });
            }
            else Tensor(name, source.Shape(name), () => source.ReadFloat32(name));
        }
        w.Write(output);
    }

    [Fact]
    public void Four_equal_experts_give_the_dense_logits()
    {
        string split = Path.Combine(Shared.TempDir(), "split.gguf");
        WriteSplit(Dense, split);
        using var dense = ModelLoader.Load(Dense);
        using var moe = ModelLoader.Load(split);
        Assert.Equal(Experts, moe.Config.Experts!.Used);
        Assert.NotNull(moe.Weights.Layers[0].Experts);
        var tokens = dense.Tokenizer!.Encode("It was a bright cold day in April, and the clocks were striking thirteen.");
        int vocab = dense.Config.VocabSize;
        var expected = new float[tokens.Length * vocab];
        var actual = new float[tokens.Length * vocab];
        using (var s = dense.CreateSession(64)) s.Forward(tokens, expected);
        using (var s = moe.CreateSession(64)) s.Forward(tokens, actual);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst < 1e-4, $"largest logit difference {worst}");
    }
}
