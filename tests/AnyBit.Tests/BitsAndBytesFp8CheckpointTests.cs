using AnyBit.Evaluation;
using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Tests.Checkpoints;
using static AnyBit.Tests.QuantizedCheckpointTests;
using Eval = AnyBit.Tests.QuantizedCheckpointTests;

namespace AnyBit.Tests;

/// <summary>
/// bitsandbytes (NF4/FP4, double-quantized absmax, LLM.int8) and FP8 checkpoints run as stored: written by their
/// projects' own quantization code (<see cref="BitsAndBytes4Writer"/>, <see cref="BitsAndBytes8Writer"/>,
/// <see cref="Fp8Writer"/>) from gutenberg-llama, checked as <see cref="QuantizedCheckpointTests"/> checks the others.
/// </summary>
[Collection("Serial")]
public class BitsAndBytesFp8CheckpointTests
{
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
        AssertFirstLayerExact(new BitsAndBytes4Writer(kind, blocksize, doubleQuant), description);
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
        AssertFirstLayerExact(new Fp8Writer(128, perRow), description, packed: false);
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
            int[] ids = Perplexity.TokenizeForEvaluation(reference.Tokenizer!, Eval.Text, 2048);
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
            int[] ids = Perplexity.TokenizeForEvaluation(ownModel.Tokenizer!, Eval.Text, 2048);
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
