using AnyBit.Evaluation;
using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Tests.Checkpoints;

namespace AnyBit.Tests;

/// <summary>
/// Quantized Hugging Face checkpoints run as stored (issue 31): checkpoints written by each format's own packing
/// (<see cref="CheckpointWriter"/>) from gutenberg-llama dequantize to exactly the format's formula, run on the integer
/// kernels, and score as AnyBit's own quantization of the same values does.
/// </summary>
[Collection("Serial")]
public class QuantizedCheckpointTests
{
    internal static readonly string Model = Shared.Data("models", "gutenberg-llama");
    internal static readonly string Text = Shared.Data("text", "eval", "sherlock.txt");

    internal static bool FirstLayer(string prefix) => prefix.StartsWith("model.layers.0.", StringComparison.Ordinal);

    /// <summary>Every module the writer quantized reads back as the format's dequantization, bit for bit, and is
    /// packed for the integer kernels.</summary>
    internal static void AssertExact(string folder, Dictionary<string, float[]> expected, string description, bool packed = true)
    {
        using var files = ModelLoader.Open(folder);
        Assert.Equal($"Hugging Face folder, {description}", files.Format);
        var weights = (StoreWeights)files.Weights;
        foreach (var (prefix, expectedWeight) in expected)
        {
            var want = expectedWeight;
            string name = TensorRoles.GgufNameOfHuggingFace(prefix + ".weight")!;
            var got = weights.ReadFloat32(name);
            // Llama's Q and K rows are read in GGUF's adjacent-pair order.
            if (TensorRoles.FromGguf(name) is ({ RotaryHeads: { } heads }, _))
                want = RopeRows.ToAdjacentPairs<float>(want, heads(files.Config), (int)weights.Shape(name)[1]);
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < want.Length; i++)
                if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]))
                    Assert.Fail($"{prefix}[{i}]: {got[i]:R}, the format's formula gives {want[i]:R}");
            var t = weights.Tensor(name);
            if (packed) Assert.NotNull(PackedKind.For(t.Format, t.Type));
        }
    }

    /// <summary>A checkpoint of layer 0's seven linear layers written by <paramref name="writer"/> reads back exactly
    /// (<see cref="AssertExact"/>).</summary>
    internal static void AssertFirstLayerExact(IModuleWriter writer, string description, bool packed = true)
    {
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, writer, FirstLayer);
            Assert.Equal(7, expected.Count);
            AssertExact(dir, expected, description, packed);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string, int, int, bool, bool, bool> GptqCases => new()
    {
        { "GPTQ int4 g128 asym (v1)", 4, 128, false, false, false },
        { "GPTQ int4 g128 sym (v1)", 4, 128, true, false, false },
        { "GPTQ int4 g64 asym (v2)", 4, 64, false, true, false },
        { "GPTQ int4 per-channel asym (v1)", 4, -1, false, false, false },
        { "GPTQ int4 g128 asym (v1, act-order)", 4, 128, false, false, true },
        { "GPTQ int2 g32 asym (v1)", 2, 32, false, false, false },
        { "GPTQ int8 g128 sym (v2, act-order)", 8, 128, true, true, true },
    };

    [Theory]
    [MemberData(nameof(GptqCases))]
    public void Gptq_checkpoints_dequantize_to_the_formats_formula(string description, int bits, int group, bool sym, bool v2, bool actOrder)
    {
        AssertFirstLayerExact(new GptqWriter(bits, group, sym, v2, actOrder), description);
    }

    [Fact]
    public void Awq_gemm_checkpoints_dequantize_to_the_formats_formula()
    {
        AssertFirstLayerExact(new AwqWriter(128), "AWQ int4 g128 asym (GEMM)");
    }

    public static TheoryData<string, int, int, bool> CompressedTensorsCases => new()
    {
        { "compressed-tensors int4 g128 sym", 4, 128, true },
        { "compressed-tensors int4 g32 asym", 4, 32, false },
        { "compressed-tensors int8 per-channel sym", 8, -1, true },
        { "compressed-tensors int3 g64 asym", 3, 64, false },
    };

    [Theory]
    [MemberData(nameof(CompressedTensorsCases))]
    public void Compressed_tensors_pack_quantized_checkpoints_dequantize_to_the_formats_formula(string description, int bits, int group, bool symmetric)
    {
        AssertFirstLayerExact(new CompressedTensorsWriter(bits, group, symmetric), description);
    }

    [Fact]
    public void Mxfp4_blocks_and_scales_dequantize_to_the_formats_formula()
    {
        AssertFirstLayerExact(new Mxfp4Writer(), "MXFP4 (gpt-oss blocks and scales)");
    }

    /// <summary>Act-order permutes the input columns of every module; the kernels gather the input to match, so the
    /// fast path gives the logits of the float path that multiplies the dequantized weights in input order.</summary>
    [Fact]
    public void Act_order_gptq_runs_on_the_kernels_with_the_float_paths_logits()
    {
        string dir = Shared.TempDir();
        try
        {
            CheckpointWriter.Write(Model, dir, new GptqWriter(4, 128, sym: false, actOrder: true));
            using var fast = ModelLoader.Load(dir);
            using var reference = ModelLoader.Load(dir, new LoadOptions { Kernels = KernelMode.Float32 });
            Assert.All(fast.Weights.Layers.SelectMany(l => l.Linears), w => Assert.NotNull(w.InputOrder));
            Assert.All(fast.Weights.Layers.SelectMany(l => l.Linears), w => Assert.NotNull(w.Packed));
            int[] tokens = fast.Tokenizer!.Encode("Holmes looked at the letter and said nothing for a while.").ToArray();
            using var a = fast.CreateSession(64);
            using var b = reference.CreateSession(64);
            var x = a.Forward(tokens).ToArray();
            var y = b.Forward(tokens).ToArray();
            double num = 0, den = 0;
            for (int i = 0; i < x.Length; i++) { num += (x[i] - y[i]) * (x[i] - y[i]); den += y[i] * y[i]; }
            Assert.True(Math.Sqrt(num / den) < 0.02, $"relative error {Math.Sqrt(num / den):E2}");
            Assert.Equal(Array.IndexOf(y, y.Max()), Array.IndexOf(x, x.Max()));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string, string> SameValueCases => new()
    {
        { "gptq", "int4:g128:asym" },
        { "awq", "int4:g128:asym" },
        { "compressed-tensors", "int4:g128:asym" },
        { "mxfp4", "mxfp4" },
    };

    private static IModuleWriter WriterFor(string name) => name switch
    {
        "gptq" => new GptqWriter(4, 128, sym: false),
        "awq" => new AwqWriter(128),
        "compressed-tensors" => new CompressedTensorsWriter(4, 128, symmetric: false, TensorType.F16),
        _ => new Mxfp4Writer(),
    };

    /// <summary>A checkpoint holding the codes AnyBit's own quantization chooses scores exactly as that quantization
    /// does (embedding kept float in both; perplexity as <c>anybit perplexity</c> prints it).</summary>
    [Theory]
    [MemberData(nameof(SameValueCases))]
    public void A_checkpoint_scores_as_anybits_own_quantization_of_the_same_values(string checkpoint, string format)
    {
        string dir = Shared.TempDir();
        try
        {
            string own = Path.Combine(dir, "own.gguf");
            var (plan, input) = ModelQuantizer.Plan(Model, new QuantizeOptions
            {
                Format = format, KeepFloat = [new System.Text.RegularExpressions.Regex("token_embd")],
            });
            using (input) ModelQuantizer.Write(plan, own);
            using var ownModel = ModelLoader.Load(own);
            int[] ids = Perplexity.TokenizeForEvaluation(ownModel.Tokenizer!, Text, 2048);
            double ownPpl = Perplexity.Evaluate(ownModel, ids, 512).Perplexity;
            string folder = Path.Combine(dir, checkpoint);
            CheckpointWriter.Write(Model, folder, WriterFor(checkpoint));
            using var m = ModelLoader.Load(folder);
            double ppl = Perplexity.Evaluate(m, ids, 512).Perplexity;
            Assert.Equal(ownPpl.ToString("F4"), ppl.ToString("F4"));
            Assert.True(Math.Abs(ppl - ownPpl) < 1e-6 * ownPpl, $"{checkpoint}: {ppl:F6}, AnyBit's {format} {ownPpl:F6}");
            Assert.All(m.Weights.Layers.SelectMany(l => l.Linears), w => Assert.NotNull(w.Packed));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary><c>quantize</c> to the format a checkpoint's layers were repacked to copies them: the GGUF holds the
    /// checkpoint's values, where re-fitting them would change them.</summary>
    [Fact]
    public void Quantize_re_emits_a_checkpoint_in_its_own_int_format_losslessly()
    {
        string dir = Shared.TempDir();
        try
        {
            string folder = Path.Combine(dir, "gptq"), output = Path.Combine(dir, "out.gguf");
            CheckpointWriter.Write(Model, folder, new GptqWriter(4, 128, sym: false), FirstLayer);
            var r = CliRunner.Run("quantize", "-m", folder, "--format", "int4:g128:asym", "--keep-float", "token_embd|blk\\.[1-9]", "-o", output);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var source = ModelLoader.Open(folder);
            using var written = ModelLoader.Open(output);
            foreach (string role in new[] { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" })
            {
                string name = $"blk.0.{role}.weight";
                Assert.Equal("int4:g128:asym", ((StoreWeights)written.Weights).Tensor(name).TypeName);
                Assert.Equal(source.Weights.ReadFloat32(name), written.Weights.ReadFloat32(name));
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string, string, string> HostileCases => new()
    {
        // (checkpoint, damage, message): damage is "method", or TENSOR-SUFFIX:g_idx|halve (of layer 0's q_proj)
        { "gptq", "g_idx:g_idx", "tensor 'model.layers.0.self_attn.q_proj.g_idx': value 4 at column" },
        { "gptq", "scales:halve", "tensor 'model.layers.0.self_attn.q_proj.scales': shape [4, 256], expected [4, 512]" },
        { "gptq", "qzeros:halve", "tensor 'model.layers.0.self_attn.q_proj.qzeros': shape [4, 32], expected [4, 64]" },
        { "gptq", "method", "quant_method 'hqq' is not supported" },
        { "awq", "qzeros:halve", "tensor 'model.layers.0.self_attn.q_proj.qzeros': shape [4, 32], expected [4, 64]" },
        { "compressed-tensors", "weight_packed:halve", "tensor 'model.layers.0.self_attn.q_proj.weight_packed': shape [512, 32], expected [512, 64]" },
        { "compressed-tensors", "weight_zero_point:halve", "tensor 'model.layers.0.self_attn.q_proj.weight_zero_point': shape [64, 2], expected [64, 4]" },
        { "mxfp4", "weight_scales:halve", "tensor 'model.layers.0.self_attn.q_proj.weight_scales': shape [512, 8], expected [512, 16]" },
    };

    /// <summary>Hostile checkpoints fail with one line naming the tensor and the problem, from the library and from
    /// the command line (exit code 1).</summary>
    [Theory]
    [MemberData(nameof(HostileCases))]
    public void Hostile_checkpoints_fail_with_one_line_naming_tensor_and_problem(string checkpoint, string damage, string message)
    {
        string dir = Shared.TempDir();
        try
        {
            CheckpointWriter.Write(Model, dir, WriterFor(checkpoint), FirstLayer);
            Damage(dir, damage);
            var e = Assert.ThrowsAny<AnyBitException>(() => ModelLoader.Load(dir));
            Assert.Contains(message, e.Message);
            Assert.DoesNotContain('\n', e.Message);
            var r = CliRunner.Run("run", "-m", dir, "-p", "Holmes", "-n", "2");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Stderr);
            Assert.Single(r.Stderr.Trim().Split('\n'));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Rewrites one tensor of layer 0's q_proj (or the config's quant_method).</summary>
    private static void Damage(string dir, string damage)
    {
        string configPath = Path.Combine(dir, "config.json");
        if (damage == "method")
        {
            File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"gptq\"", "\"hqq\""));
            return;
        }
        string target = "model.layers.0.self_attn.q_proj." + damage.Split(':')[0], kind = damage.Split(':')[1];
        string file = Path.Combine(dir, "model.safetensors");
        var w = new SafetensorsWriter();
        bool found = false;
        using (var st = SafetensorsFile.Open(file))
            foreach (var t in st.Tensors)
            {
                byte[] bytes = t.Bytes.ToArray();
                long[] shape = t.Shape;
                if (t.Name == target)
                {
                    found = true;
                    if (kind == "g_idx") bytes[4 * 100] = 4;
                    else { shape = [.. shape[..^1], shape[^1] / 2]; bytes = new byte[bytes.Length / 2]; }
                }
                w.Add(t.Name, t.Type, shape, bytes);
            }
        Assert.True(found, target);
        w.Write(file);
    }
}
