using System.Text.Json;

namespace AnyBit.Tests;

/// <summary>The command line, end to end, through the real executable.</summary>
public class CliTests
{
    private static string Stories => Shared.Data("models", "stories260K");
    private static string GutenbergLlama => Shared.Data("models", "gutenberg-llama");

    [Fact]
    public void Run_json_greedy_reproduces_the_stories_reference()
    {
        var r = CliRunner.Run("run", "--model", Path.Combine(Stories, "stories260K.gguf"), "--prompt-ids", "1", "--temperature", "0", "--max-tokens", "60", "--ignore-eos", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Stories, "greedy_reference.json")));
        var expected = reference.RootElement.GetProperty("greedy_ids_60").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        Assert.Equal(new[] { 1 }, doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal(expected[1..], doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(x => x.GetInt32()));
        Assert.StartsWith(reference.RootElement.GetProperty("greedy_text").GetString()!.Trim(), doc.RootElement.GetProperty("text").GetString()!.Trim());
        Assert.True(doc.RootElement.GetProperty("timings").GetProperty("generation_tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void Run_streams_text_after_the_prompt()
    {
        var r = CliRunner.Run("run", "--model", Path.Combine(Stories, "stories260K.bin"), "--tokenizer", Path.Combine(Stories, "tok512.bin"),
            "--prompt", "Once upon a time", "--temperature", "0", "-n", "12");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Once upon a time, there was a little girl", r.Stdout);
    }

    [Fact]
    public void Run_with_a_seed_is_reproducible()
    {
        string[] args = ["run", "--model", Path.Combine(Stories, "stories260K.gguf"), "--prompt", "Once", "--temperature", "1.0", "--seed", "42", "-n", "30", "--json"];
        var a = CliRunner.Run(args);
        var b = CliRunner.Run(args);
        Assert.Equal(0, a.ExitCode);
        string Ids(string json) => JsonDocument.Parse(json).RootElement.GetProperty("generated_ids").GetRawText();
        Assert.Equal(Ids(a.Stdout), Ids(b.Stdout));
    }

    [Fact]
    public void Tokenize_json_gives_ids_and_pieces()
    {
        var r = CliRunner.Run("tokenize", "--model", Shared.Fixture("models", "llama2-sp"), "--text", "Hello world", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(new[] { 1, 421, 481, 340, 326, 312, 270, 430, 431 }, doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal("<s>", doc.RootElement.GetProperty("pieces")[0].GetString());
        var plain = CliRunner.Run("tokenize", "--model", Shared.Fixture("models", "llama2-sp"), "--text", "Hello world", "--no-special");
        Assert.Equal("421 481 340 326 312 270 430 431", plain.Stdout.Trim());
    }

    [Fact]
    public void Inspect_lists_tensors_and_hyperparameters()
    {
        var r = CliRunner.Run("inspect", "--model", GutenbergLlama, "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("llama", root.GetProperty("architecture").GetString());
        Assert.Equal(512, root.GetProperty("hidden_size").GetInt32());
        Assert.Equal(4, root.GetProperty("num_kv_heads").GetInt32());
        Assert.Contains("byte-level", root.GetProperty("tokenizer").GetString());
        var tensors = root.GetProperty("tensors").EnumerateArray().ToList();
        Assert.Contains(tensors, t => t.GetProperty("name").GetString() == "model.layers.7.mlp.down_proj.weight"
            && t.GetProperty("dtype").GetString() == "BF16" && t.GetProperty("bytes").GetInt64() == 512 * 1536 * 2);
        var human = CliRunner.Run("inspect", "--model", Path.Combine(Stories, "stories260K.v1.gguf"));
        Assert.Equal(0, human.ExitCode);
        Assert.Contains("GGUF v1", human.Stdout);
        Assert.Contains("blk.4.ffn_down.weight", human.Stdout);
    }

    [Fact]
    public void Perplexity_json_on_a_short_run()
    {
        var r = CliRunner.Run("perplexity", "--model", GutenbergLlama, "--text", Shared.Data("text", "eval", "sherlock.txt"),
            "--ctx", "128", "--max-tokens", "1000", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(7 * 128, doc.RootElement.GetProperty("tokens_scored").GetInt64());
        double ppl = doc.RootElement.GetProperty("perplexity").GetDouble();
        Assert.InRange(ppl, 10, 80);
        Assert.True(doc.RootElement.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    public static TheoryData<string, string[], string> BadInputs()
    {
        string dir = Shared.TempDir();
        string truncatedGguf = Path.Combine(dir, "truncated.gguf");
        File.WriteAllBytes(truncatedGguf, File.ReadAllBytes(Path.Combine(Stories, "stories260K.gguf"))[..5000]);
        string noKeyFolder = Path.Combine(dir, "nokey");
        Directory.CreateDirectory(noKeyFolder);
        foreach (var f in Directory.GetFiles(Shared.Fixture("models", "qwen2-bpe"))) File.Copy(f, Path.Combine(noKeyFolder, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(noKeyFolder, "config.json"), File.ReadAllText(Path.Combine(noKeyFolder, "config.json")).Replace("\"hidden_size\"", "\"hidden_sizes\""));
        string empty = Path.Combine(dir, "empty.txt");
        File.WriteAllText(empty, "");
        string huge = Path.Combine(dir, "huge.safetensors");
        var header = System.Text.Encoding.UTF8.GetBytes("""{"w":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}""");
        File.WriteAllBytes(huge, BitConverter.GetBytes((ulong)header.Length).Concat(header).ToArray());
        string hugeFolder = Path.Combine(dir, "hugefolder");
        Directory.CreateDirectory(hugeFolder);
        File.Copy(Shared.Fixture("models", "qwen2-bpe", "config.json"), Path.Combine(hugeFolder, "config.json"));
        File.Copy(huge, Path.Combine(hugeFolder, "model.safetensors"));
        string longPrompt = string.Join(" ", Enumerable.Repeat("the old fisherman mended his nets", 60));
        return new TheoryData<string, string[], string>
        {
            { "truncated GGUF", ["run", "-m", truncatedGguf, "--prompt-ids", "1"], truncatedGguf },
            { "missing config key", ["run", "-m", noKeyFolder, "-p", "hi"], "hidden_size" },
            { "100 GB tensor claim", ["inspect", "-m", hugeFolder], "past the end" },
            { "empty text file", ["perplexity", "-m", Shared.Fixture("models", "qwen2-bpe"), "--text", empty], "empty" },
            { "prompt longer than context", ["run", "-m", Shared.Fixture("models", "qwen2-bpe"), "-p", longPrompt, "--ctx", "64"], "context" },
            { "missing model", ["inspect", "-m", Path.Combine(dir, "nope.gguf")], "nope.gguf" },
            { "token id out of range", ["run", "-m", Path.Combine(Stories, "stories260K.gguf"), "--prompt-ids", "1,99999"], "99999" },
            { "both prompt kinds", ["run", "-m", Path.Combine(Stories, "stories260K.gguf"), "--prompt-ids", "1", "-p", "x"], "exactly one" },
            { "bad top-p", ["run", "-m", Path.Combine(Stories, "stories260K.gguf"), "--prompt-ids", "1", "--top-p", "2"], "top-p" },
            { "text file is a folder", ["perplexity", "-m", Shared.Fixture("models", "qwen2-bpe"), "--text", dir], dir },
        };
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_gives_one_line_and_nonzero_exit(string what, string[] args, string mentioned)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode != 0, what);
        string[] lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"{what}: expected one line, got:\n{r.Stderr}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(mentioned, lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void Unknown_option_is_a_usage_error()
    {
        var r = CliRunner.Run("run", "--model", "x", "--bogus");
        Assert.Equal(2, r.ExitCode);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}

/// <summary>Ctrl-C during quantize: the command stops with exit code 130 and leaves no output file (or finishes whole).</summary>
public class CancellationTests
{
    [Fact]
    public async Task Interrupted_quantize_leaves_no_partial_output()
    {
        string dir = Shared.TempDir();
        string output = Path.Combine(dir, "out.gguf");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "AnyBit.Cli.dll"), "quantize", "-m", Shared.Data("models", "gutenberg-llama"), "-f", "iq4_nl", "-o", output })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        await Task.Delay(1500);
        using (var kill = System.Diagnostics.Process.Start("kill", ["-INT", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000));
        if (p.ExitCode == 0)
        {
            using var g = AnyBit.IO.GgufFile.Open(output); // finished before the signal: the file is whole
        }
        else
        {
            Assert.Equal(130, p.ExitCode);
            Assert.False(File.Exists(output));
            string err = await stderr;
            Assert.DoesNotContain("   at ", err);
        }
        Assert.Empty(Directory.GetFiles(dir, "*.partial"));
        Assert.Empty(Directory.GetFiles(dir, ".*"));
    }
}
