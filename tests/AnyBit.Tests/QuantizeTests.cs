using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary><c>anybit quantize</c>: llama.cpp interop, round trips through GGUF, AnyBit types, and refusals.</summary>
public class QuantizeTests
{
    private static string Quantize(string model, string format, QuantizeOptions? options = null)
    {
        string output = Path.Combine(Shared.TempDir(), "out.gguf");
        var (plan, input) = ModelQuantizer.Plan(model, (options ?? new QuantizeOptions { Format = format }) with { Format = format });
        using (input) ModelQuantizer.Write(plan, output);
        return output;
    }

    /// <summary>From the bf16 Hugging Face folder to exactly llama-quantize's Q4_K_M tensors (types and bytes).</summary>
    [Fact]
    public void Q4_K_M_from_the_hf_folder_equals_llama_quantize_tensor_for_tensor()
    {
        string ours = Quantize(Shared.Data("models", "gutenberg-llama"), "q4_k_m");
        using var a = GgufFile.Open(ours);
        using var b = GgufFile.Open(Shared.Fixture("ggml", "models", "gutenberg-llama-q4_k_m.gguf"));
        Assert.Equal(b.Tensors.Select(t => t.Name).Order(), a.Tensors.Select(t => t.Name).Order());
        foreach (var expected in b.Tensors)
        {
            var got = a.Find(expected.Name)!;
            Assert.Equal(expected.Type, got.Type);
            Assert.Equal(expected.Shape, got.Shape);
            Assert.True(expected.Bytes.SequenceEqual(got.Bytes), $"{expected.Name} differs");
        }
        Assert.Equal(15L, a.GetInteger("general.file_type"));
        Assert.Equal(2L, a.GetInteger("general.quantization_version"));
    }

    /// <summary>
    /// The planned file's length, counted without producing a tensor (what a size budget plans against), is the
    /// written file's, for a mix of types and for an AnyBit type with its metadata key.
    /// </summary>
    [Theory]
    [InlineData("q4_k_m")]
    [InlineData("int3:g64")]
    public void A_plans_file_length_is_known_before_writing(string format)
    {
        string output = Path.Combine(Shared.TempDir(), "len.gguf");
        var (plan, input) = ModelQuantizer.Plan(Shared.Data("models", "gutenberg-llama"), new QuantizeOptions { Format = format });
        long planned = ModelQuantizer.FileBytes(plan);
        using (input) ModelQuantizer.Write(plan, output);
        Assert.Equal(new FileInfo(output).Length, planned);
        Assert.True(planned > plan.OutputBytes);
    }

    /// <summary>An f32 GGUF made from each fixture folder computes the fixture's logits and tokenizes its cases alike.</summary>
    [Theory]
    [InlineData("llama2-sp")]
    [InlineData("llama3-bpe")]
    [InlineData("qwen2-bpe")]
    [InlineData("qwen3-bpe")]
    [InlineData("mistral-sp")]
    [InlineData("bitnet-bpe")]
    public void F32_gguf_conversion_keeps_logits_and_tokenizer(string name)
    {
        string folder = Shared.Fixture("models", name);
        string gguf = Quantize(folder, "f32");
        string reference = Path.Combine(folder, "reference.safetensors");
        using var model = ModelLoader.Load(gguf, new LoadOptions { FloatReference = true });
        var ids = Shared.ReadI32(reference, "input_ids");
        float err = FixtureModelTests.MaxRelativeError(FixtureModelTests.AllLogits(model, ids), Shared.ReadF32(reference, "logits"));
        Assert.True(err < 1e-3f, $"{name}: max error {err:E3}");
        using var hf = ModelLoader.Open(folder);
        using var cases = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_cases.json")));
        foreach (var c in cases.RootElement.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            if (text.StartsWith(' ') && hf.Tokenizer!.Kind.Contains("SentencePiece")) continue; // llama.cpp's SPM adds its prefix space unconditionally
            Assert.Equal(hf.Tokenizer!.Encode(text), model.Tokenizer!.Encode(text));
            var ids2 = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal(hf.Tokenizer.Decode(ids2, skipSpecial: true), model.Tokenizer.Decode(ids2, skipSpecial: true));
        }
    }

    [Fact]
    public void Llama2c_checkpoint_converts_to_gguf_with_its_tokenizer()
    {
        string dir = Shared.Data("models", "stories260K");
        string gguf = Quantize(Path.Combine(dir, "stories260K.bin"), "f32", new QuantizeOptions { Format = "f32", TokenizerPath = Path.Combine(dir, "tok512.bin") });
        using var model = ModelLoader.Load(gguf);
        using var reference = ModelLoader.Load(Path.Combine(dir, "stories260K.gguf"));
        Assert.Equal(Generator.Greedy(reference, [1], 40), Generator.Greedy(model, [1], 40));
        Assert.Equal(reference.Tokenizer!.Encode("Once upon a time, Lily saw a cat."), model.Tokenizer!.Encode("Once upon a time, Lily saw a cat."));
    }

    /// <summary>Every family's representative specs, except the ternary ones (stored as ggml's TQ types, not AnyBit ids).</summary>
    public static TheoryData<string> AnyBitFormats => new(FormatRegistry.Families.SelectMany(f => f.Examples).Where(spec => FormatRegistry.Parse(spec).GgmlType is null));

    /// <summary>A bag of tensors quantized to an AnyBit format reads back (declared type) as the format's own dequantization.</summary>
    [Theory]
    [MemberData(nameof(AnyBitFormats))]
    public void AnyBit_formats_round_trip_through_gguf(string spec)
    {
        string source = Shared.Fixture("ggml", "source-f32.gguf");
        string output = Quantize(source, spec);
        using var src = GgufFile.Open(source);
        using var q = GgufFile.Open(output);
        foreach (var t in src.Tensors)
        {
            var stored = q.Find(t.Name)!;
            Assert.NotNull(stored.Format);
            Assert.True((int)stored.Type >= FormatRegistry.FirstCustomTypeId);
            Assert.Equal(FormatRegistry.StorageSpec(stored.Format!), q.GetString(FormatRegistry.TypeKeyPrefix + (int)stored.Type));
            var x = t.ToFloat32();
            var format = FormatRegistry.Parse(spec).Bind(t.Shape[^1]);
            var bytes = new byte[format.ByteSize(x.Length)];
            format.Quantize(x, (int)t.Shape[^1], bytes);
            Assert.True(bytes.AsSpan().SequenceEqual(stored.Bytes), $"{spec} {t.Name}: stored bytes differ");
            var back = stored.ToFloat32();
            double err = 0, norm = 0;
            for (int i = 0; i < x.Length; i++) { err += (back[i] - x[i]) * (back[i] - x[i]); norm += x[i] * x[i]; }
            // Symmetric int2 has levels −2..1 times absmax: the coarsest 2-bit grid.
            double bound = spec.StartsWith("int1") || spec.StartsWith("cb1") ? 0.9 : spec.StartsWith("int2") && spec.EndsWith(":sym") ? 0.75 : spec.StartsWith("int2") || spec.StartsWith("cb2") ? 0.7 : 0.3;
            Assert.True(Math.Sqrt(err / norm) < bound, $"{spec}: relative RMS error {Math.Sqrt(err / norm):F3}");
        }
    }

    [Fact]
    public void Unknown_format_is_refused_with_the_valid_forms_and_no_output()
    {
        string dir = Shared.TempDir();
        string output = Path.Combine(dir, "x.gguf");
        var r = CliRunner.Run("quantize", "-m", Shared.Fixture("models", "qwen2-bpe"), "-f", "q4_z", "-o", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unknown format 'q4_z'", r.Stderr);
        Assert.Contains("int{1..8}", r.Stderr);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void A_block_format_that_does_not_fit_the_rows_is_refused_before_writing()
    {
        string dir = Shared.TempDir();
        string output = Path.Combine(dir, "x.gguf");
        var r = CliRunner.Run("quantize", "-m", Shared.Data("models", "stories260K", "stories260K.gguf"), "-f", "q4_k", "-o", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not a multiple", r.Stderr);
        Assert.Contains("formats that fit rows of 64", r.Stderr);
        Assert.Empty(Directory.GetFiles(dir));
        var g = CliRunner.Run("quantize", "-m", Shared.Fixture("models", "qwen2-bpe"), "-f", "int4:g100", "-o", output);
        Assert.Equal(1, g.ExitCode);
        Assert.Contains("block of 100", g.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Undeclared_custom_type_ids_are_refused_by_the_reader()
    {
        var b = new GgufBuilder();
        b.KvString("general.architecture", "llama").Tensor("t", [32, 2], 1024, new byte[64]);
        string path = Path.Combine(Shared.TempDir(), "t.gguf");
        File.WriteAllBytes(path, b.Build());
        var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.Contains("anybit.type.1024", e.Message);
    }

    [Fact]
    public void Quantize_cli_reports_size_and_bits_per_weight()
    {
        string output = Path.Combine(Shared.TempDir(), "q.gguf");
        var r = CliRunner.Run("quantize", "-m", Shared.Fixture("models", "llama3-bpe"), "-f", "q8_0", "--tensor-type", "ffn_down=q4_k", "--keep-float", "attn_v", "-o", output, "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        Assert.Equal(new FileInfo(output).Length, doc.RootElement.GetProperty("bytes").GetInt64());
        using var g = GgufFile.Open(output);
        Assert.Equal(TensorType.Q4_K, g.Find("blk.0.ffn_down.weight")!.Type);
        Assert.Equal(TensorType.F32, g.Find("blk.0.attn_v.weight")!.Type);
        Assert.Equal(TensorType.Q8_0, g.Find("blk.1.attn_q.weight")!.Type);
        Assert.NotNull(g.Find("rope_freqs.weight"));
    }
}
