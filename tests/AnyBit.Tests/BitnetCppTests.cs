using AnyBit.Evaluation;
using AnyBit.Formats;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// bitnet.cpp's files: its I2_S type (id 36 in its llama.cpp fork) under its BitNet architecture names, read and
/// written in the layout its converter writes; mainline's retired ids refused with what to do.
/// </summary>
public class BitnetCppTests
{
    private static string Write(byte[] bytes)
    {
        string path = Path.Combine(Shared.TempDir(), "t.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>The layout written out: element j of a 128-block in byte j % 32 at bits 6 − 2·(j / 32), codes 0/1/2 =
    /// −1/0/+1 (3 reads as 0), the float scale at byte n/4 of a 32-byte tail.</summary>
    [Fact]
    public void I2s_layout_is_bitnet_cpps()
    {
        var format = FormatTable.ByType(TensorType.I2_S)!;
        const float s = 0.375f;
        var x = new float[256];
        var expectedCode = new int[256];
        for (int i = 0; i < x.Length; i++)
        {
            int t = (i * 7 + i / 3) % 3 - 1;
            x[i] = t * s;
            expectedCode[i] = t + 1;
        }
        var bytes = new byte[format.ByteSize(x.Length)];
        Assert.Equal(256 / 4 + 32, bytes.Length);
        format.Quantize(x, 128, bytes);
        for (int i = 0; i < x.Length; i++)
        {
            int block = i / 128, j = i % 128;
            Assert.Equal(expectedCode[i], (bytes[block * 32 + j % 32] >> (6 - 2 * (j / 32))) & 3);
        }
        Assert.Equal(s, BitConverter.ToSingle(bytes, 64));
        Assert.All(bytes[68..], b => Assert.Equal(0, b));
        var back = new float[x.Length];
        format.Dequantize(bytes, back);
        Assert.Equal(x, back);
        // Code 3 is never written; dequantize_row_i2_s maps it to 0.
        bytes[0] = 0xFF;
        format.Dequantize(bytes, back);
        Assert.Equal([0f, 0f, 0f, 0f], new[] { back[0], back[32], back[64], back[96] });
    }

    /// <summary>Weights that are not ternary yet are ternarized by absmean first, as bitnet.cpp's converter does before
    /// quantize_i2_s; ternary weights keep their one magnitude as the scale.</summary>
    [Fact]
    public void I2s_quantizes_master_weights_as_bitnet_cpps_converter()
    {
        var format = FormatTable.ByType(TensorType.I2_S)!;
        var rng = new Random(3);
        var w = Enumerable.Range(0, 512).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var ternary = (float[])w.Clone();
        Ternary.TernarizeInPlace(ternary);
        var fromMaster = new byte[format.ByteSize(w.Length)];
        var fromTernary = new byte[fromMaster.Length];
        format.Quantize(w, 256, fromMaster);
        format.Quantize(ternary, 256, fromTernary);
        Assert.Equal(fromTernary, fromMaster);
        var back = new float[w.Length];
        format.Dequantize(fromMaster, back);
        Assert.Equal(ternary, back);
    }

    private static GgufBuilder OneTensor(string? architecture, uint type, ulong[] ne, byte[] data, string name = "blk.0.attn_q.weight")
    {
        var b = new GgufBuilder();
        if (architecture is not null) b.KvString("general.architecture", architecture);
        return b.Tensor(name, ne, type, data);
    }

    [Theory]
    [InlineData("bitnet-b1.58")]
    [InlineData("bitnet-25")]
    [InlineData("bitnet")]
    public void Id_36_is_i2s_in_bitnet_cpp_files(string architecture)
    {
        var format = FormatTable.ByType(TensorType.I2_S)!;
        var x = Enumerable.Range(0, 256 * 2).Select(i => (i % 3 - 1) * 0.25f).ToArray();
        var bytes = new byte[format.ByteSize(x.Length)];
        format.Quantize(x, 256, bytes);
        using var g = GgufFile.Open(Write(OneTensor(architecture, 36, [256, 2], bytes).Build()));
        var t = Assert.Single(g.Tensors);
        Assert.Equal(TensorType.I2_S, t.Type);
        Assert.Equal("I2_S", t.TypeName);
        Assert.Equal(x.Length / 4 + 32, t.ByteLength);
        Assert.Equal(x, t.ToFloat32());
    }

    /// <summary>Mainline's retired repacked ids name the type and what to do; id 36 outside bitnet.cpp's BitNet names too.</summary>
    [Theory]
    [InlineData(31u, "Q4_0_4_4")]
    [InlineData(32u, "Q4_0_4_8")]
    [InlineData(33u, "Q4_0_8_8")]
    [InlineData(36u, "IQ4_NL_4_4")]
    [InlineData(37u, "IQ4_NL_4_8")]
    [InlineData(38u, "IQ4_NL_8_8")]
    public void Retired_repacked_ids_are_refused_with_what_to_do(uint id, string name)
    {
        foreach (string? architecture in new[] { "llama", "qwen3", null })
        {
            string path = Write(OneTensor(architecture, id, [256, 4], new byte[4096]).Build());
            var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
            Assert.Contains($"{name} (ggml id {id})", e.Message);
            Assert.Contains("re-quantize from the original weights with llama-quantize or anybit quantize: llama.cpp removed this repacked type", e.Message);
            if (id == 36) Assert.Contains("I2_S", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    /// <summary>bitnet.cpp's other ids in its files: I8_S and TL1 are refused; 39 is TL2 beside a "_scale" tensor (as its
    /// converter writes it), and mainline's MXFP4 otherwise.</summary>
    [Fact]
    public void Bitnet_cpp_lookup_table_types_are_refused_and_mxfp4_still_reads()
    {
        foreach (var (id, what) in new[] { (37u, "I8_S"), (38u, "TL1") })
        {
            string path = Write(OneTensor("bitnet-b1.58", id, [256, 4], new byte[4096]).Build());
            var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
            Assert.Contains(what, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        var tl2 = OneTensor("bitnet", 39, [256, 4], new byte[17 * 32]).Tensor("blk.0.attn_q.weight_scale", [1], 0, new byte[4]);
        var tl2Error = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(Write(tl2.Build())));
        Assert.Contains("TL2", tl2Error.Message);
        Assert.Contains("i2_s", tl2Error.Message);
        using var mxfp4 = GgufFile.Open(Write(OneTensor("bitnet", 39, [256, 4], new byte[17 * 32]).Build()));
        Assert.Equal(TensorType.MXFP4, mxfp4.Tensors[0].Type);
    }

    private static (string Path, string Dir) I2sFile(string model)
    {
        string dir = Shared.TempDir();
        string file = Path.Combine(dir, "i2s.gguf");
        var (plan, input) = ModelQuantizer.Plan(model, new QuantizeOptions { Format = "i2_s" });
        using (input) ModelQuantizer.Write(plan, file);
        return (file, dir);
    }

    /// <summary>What bitnet.cpp's converter writes: its architecture name and keys, file type 40 (MOSTLY_I2_S), the
    /// layer weights as I2_S with the tensor's absmean as the scale, the embedding F16 and the norms F32.</summary>
    [Fact]
    public void Quantize_writes_bitnet_cpps_layout()
    {
        string folder = Shared.Fixture("models", "bitnet-bpe");
        var (file, dir) = I2sFile(folder);
        try
        {
            using var g = GgufFile.Open(file);
            Assert.Equal("bitnet-b1.58", g.GetString("general.architecture"));
            Assert.Equal(40, g.GetInteger("general.file_type"));
            Assert.Equal(256, g.GetInteger("bitnet-b1.58.embedding_length"));
            Assert.Null(g.GetInteger("bitnet.embedding_length"));
            Assert.Equal(TensorType.F16, g.Find("token_embd.weight")!.Type);
            Assert.Equal(TensorType.F32, g.Find("blk.0.attn_sub_norm.weight")!.Type);
            Assert.Null(g.Find("output.weight"));
            using var hf = SafetensorsCheckpoint.OpenFolder(folder);
            foreach (string role in new[] { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" })
            {
                var t = g.Find($"blk.1.{role}.weight")!;
                Assert.Equal(TensorType.I2_S, t.Type);
                Assert.Equal(t.ElementCount / 4 + 32, t.ByteLength);
                var master = new StoreWeights(hf, TensorRoles.GgufNameOfHuggingFace).ReadFloat32($"blk.1.{role}.weight");
                Ternary.TernarizeInPlace(master);
                Assert.Equal(master, t.ToFloat32());
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>The I2_S file runs as trained: int8 activations on the ternary kernel give the fixture's reference
    /// logits, and its float-activation path the float ones.</summary>
    [Fact]
    public void I2s_file_matches_the_fixtures_reference_logits()
    {
        string folder = Shared.Fixture("models", "bitnet-bpe");
        string reference = Path.Combine(folder, "reference.safetensors");
        var ids = Shared.ReadI32(reference, "input_ids");
        var (file, dir) = I2sFile(folder);
        try
        {
            using var model = ModelLoader.Load(file);
            Assert.Equal(ActivationMode.Int8PerToken, model.Activations);
            var wq = model.Weights.Layers[0].Wq;
            Assert.Equal(TensorType.TQ2_0, wq.Packed!.Type);
            Assert.Equal("I2_S ternarized", wq.StoredType);
            float err = FixtureModelTests.MaxRelativeError(FixtureModelTests.AllLogits(model, ids), Shared.ReadF32(reference, "logits_w158a8"));
            Assert.True(err < 1e-3f, $"int8 activations: max error {err:E3} of the largest logit");
            using var floatModel = ModelLoader.Load(file, new LoadOptions { FloatReference = true });
            err = FixtureModelTests.MaxRelativeError(FixtureModelTests.AllLogits(floatModel, ids), Shared.ReadF32(reference, "logits"));
            Assert.True(err < 1e-3f, $"float activations: max error {err:E3} of the largest logit");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// gutenberg-bitnet as an I2_S file keeps the as-trained perplexity (Sherlock 36.168 over the first 200,000 ids at
    /// ctx 512; measured by hand with anybit perplexity). Here four short windows, against the same windows run from
    /// the bf16 safetensors folder: both become the same ternary codes and scales, so they agree to rounding.
    /// </summary>
    [Fact]
    public void Gutenberg_bitnet_i2s_file_keeps_the_as_trained_perplexity()
    {
        string folder = Shared.Data("models", "gutenberg-bitnet");
        var (file, dir) = I2sFile(folder);
        try
        {
            using var i2s = ModelLoader.Load(file);
            using var trained = ModelLoader.Load(folder);
            var ids = Perplexity.TokenizeForEvaluation(trained.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), 4 * 128 + 1);
            var r = Perplexity.Evaluate(i2s, trained, ids, 128, WindowMethod.Full);
            Assert.Equal(4, r.Windows);
            Assert.InRange(r.Perplexity / r.BasePerplexity!.Value, 0.995, 1.005);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>An I2_S file quantized to a mainline type goes back to llama.cpp's architecture name.</summary>
    [Fact]
    public void Requantizing_an_i2s_file_returns_to_llama_cpps_name()
    {
        var (file, dir) = I2sFile(Shared.Fixture("models", "bitnet-bpe"));
        try
        {
            string tq = Path.Combine(dir, "tq.gguf");
            var (plan, input) = ModelQuantizer.Plan(file, new QuantizeOptions { Format = "tq2_0" });
            using (input) ModelQuantizer.Write(plan, tq);
            using var g = GgufFile.Open(tq);
            Assert.Equal("bitnet", g.GetString("general.architecture"));
            Assert.Equal(256, g.GetInteger("bitnet.embedding_length"));
            Assert.Equal(TensorType.TQ2_0, g.Find("blk.0.attn_q.weight")!.Type);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>I2_S is only read in bitnet.cpp's BitNet files: other models and bags of tensors cannot be written as it.</summary>
    [Fact]
    public void I2s_is_refused_outside_bitnet_models()
    {
        var e = Assert.Throws<AnyBitException>(() => ModelQuantizer.Plan(Shared.Fixture("models", "llama3-bpe"), new QuantizeOptions { Format = "i2_s" }));
        Assert.Contains("i2_s is bitnet.cpp's type", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        e = Assert.Throws<AnyBitException>(() => ModelQuantizer.Plan(Shared.Fixture("ggml", "source-f32.gguf"), new QuantizeOptions { Format = "i2_s" }));
        Assert.Contains("i2_s is bitnet.cpp's type", e.Message);
        // The writer itself refuses I2_S under any other architecture (as a per-tensor plan could ask), writing nothing.
        string path = Path.Combine(Shared.TempDir(), "x.gguf");
        var plan = new QuantPlan
        {
            Tensors = [new PlannedTensor("blk.0.attn_q.weight", [2, 128], FormatTable.ByType(TensorType.I2_S)!, () => new float[256])],
            WriteMetadata = w => w.Add("general.architecture", "llama"),
        };
        e = Assert.Throws<AnyBitException>(() => ModelQuantizer.Write(plan, path));
        Assert.Contains("'llama'", e.Message);
        Assert.False(File.Exists(path));
    }
}
