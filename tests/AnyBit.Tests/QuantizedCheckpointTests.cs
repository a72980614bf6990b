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
    private static readonly string Model = Shared.Data("models", "gutenberg-llama");
    private static readonly string Text = Shared.Data("text", "eval", "sherlock.txt");

    private static bool FirstLayer(string prefix) => prefix.StartsWith("model.layers.0.", StringComparison.Ordinal);

    /// <summary>Every module the writer quantized reads back as the format's dequantization, bit for bit, and is
    /// packed for the integer kernels.</summary>
    private static void AssertExact(string folder, Dictionary<string, float[]> expected, string description, bool packed = true)
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
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new GptqWriter(bits, group, sym, v2, actOrder), FirstLayer);
            Assert.Equal(7, expected.Count);
            AssertExact(dir, expected, description);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Awq_gemm_checkpoints_dequantize_to_the_formats_formula()
    {
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new AwqWriter(128), FirstLayer);
            AssertExact(dir, expected, "AWQ int4 g128 asym (GEMM)");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
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
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new CompressedTensorsWriter(bits, group, symmetric), FirstLayer);
            AssertExact(dir, expected, description);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Mxfp4_blocks_and_scales_dequantize_to_the_formats_formula()
    {
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new Mxfp4Writer(), FirstLayer);
            AssertExact(dir, expected, "MXFP4 (gpt-oss blocks and scales)");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
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

    public static TheoryData<string, string, int, bool> BitsAndBytes4Cases => new()
    {
        { "bitsandbytes nf4", "nf4", 64, false },
        { "bitsandbytes nf4 (double quant)", "nf4", 64, true },
        { "bitsandbytes fp4", "fp4", 64, false },
        { "bitsandbytes fp4 (double quant)", "fp4", 128, true },
        { "bitsandbytes nf4 (double quant)", "nf4", 512, true },
    };

    /// <summary>bitsandbytes 4-bit (with and without double-quantized absmax, and a block size the kernels run as
    /// split blocks) reads back as bitsandbytes' dequantization, bit for bit, on the integer kernels.</summary>
    [Theory]
    [MemberData(nameof(BitsAndBytes4Cases))]
    public void BitsAndBytes_4bit_checkpoints_dequantize_to_the_formats_formula(string description, string kind, int blocksize, bool doubleQuant)
    {
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new BitsAndBytes4Writer(kind, blocksize, doubleQuant), FirstLayer);
            Assert.Equal(7, expected.Count);
            AssertExact(dir, expected, description);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>LLM.int8 reads back as the scheme's formula float32(SCB·float32(1/127))·q on the integer kernels, and
    /// that is within one float32 ulp of bitsandbytes' (q·SCB)·float32(1/127).</summary>
    [Fact]
    public void BitsAndBytes_int8_checkpoints_dequantize_to_the_formats_formula()
    {
        string dir = Shared.TempDir();
        try
        {
            var writer = new BitsAndBytes8Writer();
            var expected = CheckpointWriter.Write(Model, dir, writer, FirstLayer);
            AssertExact(dir, expected, "bitsandbytes LLM.int8 (int8 per-row)");
            long same = 0, total = 0;
            foreach (var (prefix, (scb, q)) in writer.Stored)
            {
                var ours = expected[prefix];
                int cols = q.Length / scb.Length;
                for (int i = 0; i < q.Length; i++)
                {
                    float bnb = BitsAndBytes8Writer.Bnb(q[i], scb[i / cols]);
                    long ulps = Math.Abs((long)BitConverter.SingleToInt32Bits(ours[i]) - BitConverter.SingleToInt32Bits(bnb));
                    if (q[i] != 0 && ulps > 1) Assert.Fail($"{prefix}[{i}]: {ours[i]:R}, bitsandbytes {bnb:R}: {ulps} ulps apart");
                    if (ours[i] == bnb) same++;
                    total++;
                }
            }
            Assert.True(same > total / 2, $"only {same} of {total} equal bitsandbytes' value");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Fine-grained FP8 (128×128 tiles) and FBGEMM FP8 (per row) read back as fp8·scale in float32, bit for
    /// bit, held as e4m3fn:g32:f32 blocks (no integer kernel runs 8-bit minifloats: the float tiles read them).</summary>
    [Theory]
    [InlineData("FP8 e4m3 128x128 blocks", false)]
    [InlineData("FBGEMM FP8 e4m3 per-channel", true)]
    public void Fp8_checkpoints_dequantize_to_the_formats_formula(string description, bool perRow)
    {
        string dir = Shared.TempDir();
        try
        {
            var expected = CheckpointWriter.Write(Model, dir, new Fp8Writer(128, perRow), FirstLayer);
            AssertExact(dir, expected, description, packed: false);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>A whole model in fine-grained FP8 runs its blocks as stored (9 bits a weight) on the float tiles, with
    /// the float32 path's perplexity to the last bit, and scores close to the float model.</summary>
    [Fact]
    public void Fp8_model_scores_close_to_the_float_model()
    {
        string dir = Shared.TempDir();
        try
        {
            CheckpointWriter.Write(Model, dir, new Fp8Writer(128));
            using var reference = ModelLoader.Load(Model);
            int[] ids = Perplexity.TokenizeForEvaluation(reference.Tokenizer!, Text, 2048);
            double floatPpl = Perplexity.Evaluate(reference, ids, 512).Perplexity;
            using var m = ModelLoader.Load(dir);
            Assert.All(m.Weights.Layers.SelectMany(l => l.Linears), w => Assert.Equal(NarrowKind.ScaledE4M3, w.Narrow?.Kind));
            Assert.Equal(512L * 512 / 32 * 36, m.Weights.Layers[0].Wq.ByteLength);
            double ppl = Perplexity.Evaluate(m, ids, 512).Perplexity;
            using var float32 = ModelLoader.Load(dir, new LoadOptions { Kernels = KernelMode.Float32 });
            Assert.Equal(Perplexity.Evaluate(float32, ids, 512).Perplexity, ppl);
            Assert.True(double.IsFinite(ppl));
            Assert.True(Math.Abs(ppl - floatPpl) < 0.02 * floatPpl, $"FP8 {ppl:F4}, float {floatPpl:F4}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>An NF4 checkpoint (no double quant) holds the codes and absmax AnyBit's nf4:g64 chooses, so its
    /// perplexity is AnyBit's own quantization's (embedding kept float in both).</summary>
    [Fact]
    public void BitsAndBytes_nf4_scores_as_anybits_own_nf4_g64()
    {
        string dir = Shared.TempDir();
        try
        {
            string own = Path.Combine(dir, "own.gguf");
            var (plan, input) = ModelQuantizer.Plan(Model, new QuantizeOptions
            {
                Format = "nf4:g64", KeepFloat = [new System.Text.RegularExpressions.Regex("token_embd")],
            });
            using (input) ModelQuantizer.Write(plan, own);
            using var ownModel = ModelLoader.Load(own);
            int[] ids = Perplexity.TokenizeForEvaluation(ownModel.Tokenizer!, Text, 2048);
            double ownPpl = Perplexity.Evaluate(ownModel, ids, 512).Perplexity;
            string folder = Path.Combine(dir, "bnb");
            CheckpointWriter.Write(Model, folder, new BitsAndBytes4Writer("nf4", 64, doubleQuant: false));
            using var m = ModelLoader.Load(folder);
            Assert.All(m.Weights.Layers.SelectMany(l => l.Linears), w => Assert.NotNull(w.Packed));
            double ppl = Perplexity.Evaluate(m, ids, 512).Perplexity;
            Assert.True(Math.Abs(ppl - ownPpl) < 1e-5 * ownPpl, $"bitsandbytes nf4 {ppl:F6}, AnyBit's nf4:g64 {ownPpl:F6}");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<string, string> HostileBnbFp8Cases => new()
    {
        { "absmax", "tensor 'model.layers.0.self_attn.q_proj.weight.absmax': shape [2048], expected [4096]" },
        { "quant_state", "tensor 'model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4': shape [512] is not [out features, in features]" },
        { "weight_scale_inv", "tensor 'model.layers.0.self_attn.q_proj.weight_scale_inv': shape [4, 2], expected [4, 4]" },
    };

    /// <summary>Hostile bitsandbytes and FP8 checkpoints fail with one line naming the tensor and the problem.</summary>
    [Theory]
    [MemberData(nameof(HostileBnbFp8Cases))]
    public void Hostile_bitsandbytes_and_fp8_checkpoints_fail_with_one_line(string damage, string message)
    {
        string dir = Shared.TempDir();
        try
        {
            IModuleWriter writer = damage == "weight_scale_inv" ? new Fp8Writer(128) : new BitsAndBytes4Writer("nf4", 64, doubleQuant: false);
            CheckpointWriter.Write(Model, dir, writer, FirstLayer);
            string p = "model.layers.0.self_attn.q_proj.";
            Rewrite(dir, (name, shape, bytes) =>
            {
                if (damage == "absmax" && name == p + "weight.absmax") return ([shape[0] / 2], bytes[..(bytes.Length / 2)]);
                if (damage == "quant_state" && name == p + "weight.quant_state.bitsandbytes__nf4")
                {
                    byte[] json = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes).Replace("[512,512]", "[512]"));
                    return ([json.Length], json);
                }
                if (damage == "weight_scale_inv" && name == p + "weight_scale_inv") return ([shape[0], shape[1] / 2], bytes[..(bytes.Length / 2)]);
                return (shape, bytes);
            });
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

    /// <summary>Rewrites a checkpoint's tensors through <paramref name="change"/> (name, shape, bytes) → (shape, bytes).</summary>
    private static void Rewrite(string dir, Func<string, long[], byte[], (long[] Shape, byte[] Bytes)> change)
    {
        string file = Path.Combine(dir, "model.safetensors");
        var w = new SafetensorsWriter();
        using (var st = SafetensorsFile.Open(file))
            foreach (var t in st.Tensors)
            {
                var (shape, bytes) = change(t.Name, t.Shape, t.Bytes.ToArray());
                w.Add(t.Name, t.Type, shape, bytes);
            }
        w.Write(file);
    }
}
