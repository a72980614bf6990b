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
}
