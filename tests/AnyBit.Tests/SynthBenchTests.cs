using System.Security.Cryptography;
using System.Text.Json;
using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary><c>anybit synth</c> and <c>anybit bench</c>, end to end on the tiny preset.</summary>
public class SynthBenchTests
{
    [Fact]
    public void Synth_writes_a_reproducible_runnable_llama_model()
    {
        string dir = Shared.TempDir();
        string a = Path.Combine(dir, "a.gguf"), b = Path.Combine(dir, "b.gguf");
        Assert.Equal(0, CliRunner.Run("synth", "--preset", "tiny", "--format", "q8_0", "--seed", "7", "-o", a).ExitCode);
        Assert.Equal(0, CliRunner.Run("synth", "--preset", "tiny", "--format", "q8_0", "--seed", "7", "-o", b).ExitCode);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(a)), SHA256.HashData(File.ReadAllBytes(b)));
        using var model = ModelLoader.Load(a);
        Assert.Equal(256, model.Config.HiddenSize);
        Assert.Equal(1024, model.Config.VocabSize);
        // Text falls back to byte tokens (the synthetic pieces have no merge path), and decodes back.
        Assert.Equal("hello world", AnyBit.Text.TokenizerExtensions.Decode(model.Tokenizer!, model.Tokenizer!.Encode("hello world"), skipSpecial: true));
        Assert.Equal("t264 t265", AnyBit.Text.TokenizerExtensions.Decode(model.Tokenizer!, new[] { 264, 265 }));
        var ids = Generator.Greedy(model, [1, 300, 301], 5, stopAtEos: false);
        Assert.Equal(5, ids.Length);
        using var g = GgufFile.Open(a);
        Assert.Equal(TensorType.Q8_0, g.Find("blk.1.ffn_down.weight")!.Type);
        Assert.Equal(TensorType.F32, g.Find("blk.1.ffn_norm.weight")!.Type);
    }

    [Fact]
    public void Synth_shape_options_override_the_preset()
    {
        string path = Path.Combine(Shared.TempDir(), "s.gguf");
        var r = CliRunner.Run("synth", "--preset", "tiny", "--hidden", "128", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--ffn", "256", "--vocab", "512", "-o", path);
        Assert.Equal(0, r.ExitCode);
        using var files = ModelLoader.Open(path);
        Assert.Equal((128, 1, 2, 1, 256, 512), (files.Config.HiddenSize, files.Config.NumLayers, files.Config.NumHeads, files.Config.NumKvHeads, files.Config.IntermediateSize, files.Config.VocabSize));
        var bad = CliRunner.Run("synth", "--preset", "huge", "-o", path);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("unknown preset", bad.Stderr);
    }

    [Fact]
    public void Synth_writes_gpt_oss_shapes_with_mxfp4_experts_and_the_published_mix()
    {
        string path = Path.Combine(Shared.TempDir(), "g.gguf");
        var r = CliRunner.Run("synth", "--preset", "gpt-oss-20b", "--layers", "2", "--hidden", "128", "--heads", "4", "--kv-heads", "2",
            "--ffn", "64", "--experts", "8", "--vocab", "512", "-o", path);
        Assert.Equal(0, r.ExitCode);
        using (var g = GgufFile.Open(path))
        {
            Assert.Equal(38u, (uint)g.GetInteger("general.file_type")!);
            Assert.Equal("yarn", g.GetString("gpt-oss.rope.scaling.type"));
            Assert.Equal(3, g.GetInteger("gpt-oss.expert_gating_func"));
            Assert.Equal(128, g.GetInteger("gpt-oss.attention.sliding_window"));
            Assert.Equal(TensorType.MXFP4, g.Find("blk.1.ffn_gate_exps.weight")!.Type);
            Assert.Equal(TensorType.MXFP4, g.Find("blk.1.ffn_down_exps.weight")!.Type);
            foreach (string q8 in new[] { "token_embd.weight", "output.weight", "blk.0.attn_q.weight", "blk.0.attn_output.weight" })
                Assert.Equal(TensorType.Q8_0, g.Find(q8)!.Type);
            foreach (string f32 in new[] { "blk.0.attn_sinks.weight", "blk.0.attn_q.bias", "blk.0.attn_output.bias", "blk.0.ffn_gate_inp.weight",
                "blk.0.ffn_gate_inp.bias", "blk.0.ffn_gate_exps.bias", "blk.0.ffn_down_exps.bias", "blk.0.post_attention_norm.weight" })
                Assert.Equal(TensorType.F32, g.Find(f32)!.Type);
        }
        using var model = ModelLoader.Load(path);
        var c = model.Config;
        Assert.Same(Architecture.GptOss, c.Architecture);
        Assert.Equal((64, 128, 131072), (c.HeadDim, c.SlidingWindow, c.MaxPositions));
        Assert.Equal((RopeScalingType.Yarn, 150000.0, 32.0, 4096), (c.Rope.Scaling, c.Rope.Theta, c.Rope.Factor, c.Rope.OriginalMaxPositions));
        Assert.Equal(1 + 0.1 * Math.Log(32), c.Rope.AttentionFactor, 6);
        Assert.Equal((8, 4, 64, ExpertGating.SoftmaxWeight, 7f), (c.Experts!.Count, c.Experts.Used, c.Experts.FfnSize, c.Experts.Gating, c.Experts.SwigluLimit));
        Assert.Equal(5, Generator.Greedy(model, [1, 300, 301], 5, stopAtEos: false).Length);
    }

    [Fact]
    public void Bench_reports_llama_bench_rows()
    {
        string path = Path.Combine(Shared.TempDir(), "m.gguf");
        Assert.Equal(0, CliRunner.Run("synth", "--preset", "tiny", "-o", path).ExitCode);
        var r = CliRunner.Run("bench", "--model", path, "-p", "32", "-n", "8", "-r", "2", "-t", "2", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal(32, rows[0].GetProperty("n_prompt").GetInt32());
        Assert.Equal(0, rows[0].GetProperty("n_gen").GetInt32());
        Assert.Equal(8, rows[1].GetProperty("n_gen").GetInt32());
        foreach (var row in rows)
        {
            Assert.Equal(2, row.GetProperty("n_threads").GetInt32());
            Assert.True(row.GetProperty("avg_ts").GetDouble() > 0);
            Assert.True(row.GetProperty("stddev_ts").GetDouble() >= 0);
            Assert.True(row.GetProperty("model_size").GetInt64() > 0);
            Assert.True(row.GetProperty("model_n_params").GetInt64() > 0);
            Assert.True(row.GetProperty("kernels").EnumerateObject().Any());
        }
        Assert.True(rows[1].GetProperty("bytes_per_second").GetDouble() > 0);
    }

    /// <summary>
    /// <c>bench -d</c>: runs start at the depth (prefilled or random rows), in the JSON as n_depth; a depth past the
    /// model's context is a one-line error.
    /// </summary>
    [Fact]
    public void Bench_runs_at_a_depth()
    {
        string path = Path.Combine(Shared.TempDir(), "d.gguf");
        Assert.Equal(0, CliRunner.Run("synth", "--preset", "tiny", "-o", path).ExitCode);
        foreach (var fill in new[] { "prefill", "random" })
        {
            var r = CliRunner.Run("bench", "--model", path, "-p", "8", "-n", "4", "-r", "1", "-t", "2", "-d", "300", "--depth-fill", fill, "-ctk", "q4_0", "--json");
            Assert.Equal(0, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Stdout);
            foreach (var row in doc.RootElement.EnumerateArray())
            {
                Assert.Equal(300, row.GetProperty("n_depth").GetInt32());
                Assert.True(row.GetProperty("avg_ts").GetDouble() > 0);
            }
        }
        var bad = CliRunner.Run("bench", "--model", path, "-p", "8", "-n", "4", "-d", "600");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("more than the model's context of 512", bad.Stderr);
        Assert.Single(bad.Stderr.Trim().Split('\n'));
    }

    /// <summary>
    /// <see cref="InferenceSession.FillRandom"/> writes through the cache's own path: positions advance, a quantized
    /// cache holds the rows as its format stores them (the decode that follows reads finite values), and the fill
    /// refuses to pass the context.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("q4_0")]
    [InlineData("int2:g32:min:tokens")]
    public void Random_fill_advances_the_cache(string? type)
    {
        string path = Path.Combine(Shared.TempDir(), "f.gguf");
        Assert.Equal(0, CliRunner.Run("synth", "--preset", "tiny", "-o", path).ExitCode);
        using var model = ModelLoader.Load(path);
        var cache = type is null ? null : new AnyBit.Inference.KvCacheOptions { Key = AnyBit.Inference.KvCacheType.Parse(type), Value = AnyBit.Inference.KvCacheType.Parse("q8_0"), Window = 16 };
        using var pool = new AnyBit.Kernels.WorkerPool(2);
        using var session = model.CreateSession(512, maxBatch: 64, pool: pool, cache: cache);
        session.FillRandom(200);
        Assert.Equal(200, session.Position);
        var logits = session.Forward([5]);
        Assert.All(logits.ToArray(), x => Assert.True(float.IsFinite(x)));
        Assert.Throws<AnyBitException>(() => session.FillRandom(400));
    }
}
