using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Tests;

/// <summary>
/// Seeded random corruption of every kind of file AnyBit reads: truncations, bit flips in the header, random byte
/// overwrites. Loading (and, when that succeeds, tokenizing and generating a few tokens) must either work or fail
/// with an <see cref="AnyBitException"/> naming the problem: never another exception type.
/// </summary>
public class CorruptionTests
{
    private const int VariantsPerKind = 150;

    public static TheoryData<string> Kinds => new()
    {
        "gguf-v3", "gguf-v1", "gguf-i2s", "llama2c-bin", "llama2c-tokenizer", "hf-safetensors", "hf-config", "hf-tokenizer", "hf-index",
    };

    private sealed record Subject(string ModelPath, string FileToCorrupt, string? TokenizerPath);

    private static Subject Prepare(string kind, string dir)
    {
        string stories = Shared.Data("models", "stories260K");
        string Copy(string from, string name)
        {
            string to = Path.Combine(dir, name);
            File.Copy(from, to, true);
            return to;
        }
        void CopyFolder(string from)
        {
            foreach (var f in Directory.GetFiles(from)) Copy(f, Path.GetFileName(f));
        }
        switch (kind)
        {
            case "gguf-v3": { var p = Copy(Path.Combine(stories, "stories260K.gguf"), "m.gguf"); return new(p, p, null); }
            case "gguf-v1": { var p = Copy(Path.Combine(stories, "stories260K.v1.gguf"), "m.gguf"); return new(p, p, null); }
            case "gguf-i2s":
            {
                // bitnet.cpp's layout: I2_S layer weights (id 36) under its "bitnet-b1.58" architecture.
                string p = Path.Combine(dir, "m.gguf");
                var (plan, input) = AnyBit.Quantization.ModelQuantizer.Plan(Shared.Fixture("models", "bitnet-bpe"), new AnyBit.Quantization.QuantizeOptions { Format = "i2_s" });
                using (input) AnyBit.Quantization.ModelQuantizer.Write(plan, p);
                return new(p, p, null);
            }
            case "llama2c-bin":
            {
                var p = Copy(Path.Combine(stories, "stories260K.bin"), "m.bin");
                return new(p, p, Copy(Path.Combine(stories, "tok512.bin"), "tok.bin"));
            }
            case "llama2c-tokenizer":
            {
                var p = Copy(Path.Combine(stories, "stories260K.bin"), "m.bin");
                var t = Copy(Path.Combine(stories, "tok512.bin"), "tok.bin");
                return new(p, t, t);
            }
            case "hf-safetensors": CopyFolder(Shared.Fixture("models", "llama2-sp")); return new(dir, Path.Combine(dir, "model.safetensors"), null);
            case "hf-config": CopyFolder(Shared.Fixture("models", "qwen2-bpe")); return new(dir, Path.Combine(dir, "config.json"), null);
            case "hf-tokenizer": CopyFolder(Shared.Fixture("models", "mistral-sp")); return new(dir, Path.Combine(dir, "tokenizer.json"), null);
            case "hf-index": CopyFolder(Shared.Fixture("models", "llama3-bpe")); return new(dir, Path.Combine(dir, "model.safetensors.index.json"), null);
            default: throw new ArgumentException(kind);
        }
    }

    private static string Corrupt(byte[] original, Random rng, string path)
    {
        var bytes = (byte[])original.Clone();
        int mode = rng.Next(5);
        string what;
        int headerSpan = Math.Min(bytes.Length, 4096);
        switch (mode)
        {
            case 0:
                int keep = rng.Next(bytes.Length);
                bytes = bytes[..keep];
                what = $"truncated to {keep} bytes";
                break;
            case 1:
                int flips = 1 + rng.Next(4);
                for (int i = 0; i < flips; i++) bytes[rng.Next(headerSpan)] ^= (byte)(1 << rng.Next(8));
                what = $"{flips} bit flips in the first {headerSpan} bytes";
                break;
            case 2:
                int n = 1 + rng.Next(16);
                for (int i = 0; i < n; i++) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                what = $"{n} random bytes anywhere";
                break;
            case 3:
                int at = rng.Next(Math.Max(1, headerSpan - 8));
                byte fill = rng.Next(2) == 0 ? (byte)0xFF : (byte)0x7F;
                for (int i = at; i < Math.Min(bytes.Length, at + 8); i++) bytes[i] = fill;
                what = $"8 bytes of 0x{fill:X2} at {at}";
                break;
            default:
                int start = rng.Next(headerSpan), len = 1 + rng.Next(64);
                bytes = bytes[..start].Concat(bytes[Math.Min(bytes.Length, start + len)..]).ToArray();
                what = $"{len} bytes cut at {start}";
                break;
        }
        File.WriteAllBytes(path, bytes);
        return what;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Corrupted_files_fail_cleanly_or_work(string kind)
    {
        string dir = Shared.TempDir();
        var subject = Prepare(kind, dir);
        byte[] original = File.ReadAllBytes(subject.FileToCorrupt);
        var rng = new Random(12345 + kind.GetHashCode(StringComparison.Ordinal) % 1000);
        int failedCleanly = 0;
        for (int v = 0; v < VariantsPerKind; v++)
        {
            string what = Corrupt(original, rng, subject.FileToCorrupt);
            try
            {
                using var model = ModelLoader.Load(subject.ModelPath, new LoadOptions { TokenizerPath = subject.TokenizerPath });
                int[] prompt = model.Tokenizer is { } tok ? tok.Encode("Once upon a time") : [1];
                if (prompt.Length == 0) prompt = [0];
                prompt = prompt.Select(id => Math.Clamp(id, 0, model.Config.VocabSize - 1)).Take(8).ToArray();
                using var session = model.CreateSession(16);
                var sampler = new Sampler(new SamplingOptions(), model.Config.VocabSize);
                _ = Generator.Generate(session, prompt, 3, sampler).ToArray();
                if (model.Tokenizer is not null) _ = model.Tokenizer.Decode([0, 1, 2, 3]);
            }
            catch (AnyBitException e)
            {
                failedCleanly++;
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                Assert.DoesNotContain('\n', e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"{kind} variant {v} ({what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
        // Sanity: the corruption actually bites (most variants of most kinds are refused).
        Assert.True(failedCleanly > 0, $"no variant of {kind} was refused: the corruption did nothing");
    }

    /// <summary>quantize and inspect on corrupted GGUF inputs: a clean refusal or a complete file, never a crash or a partial output.</summary>
    [Theory]
    [InlineData("gguf-v3")]
    [InlineData("gguf-v1")]
    public void Quantizing_corrupted_gguf_fails_cleanly(string kind)
    {
        string dir = Shared.TempDir();
        var subject = Prepare(kind, dir);
        byte[] original = File.ReadAllBytes(subject.FileToCorrupt);
        var rng = new Random(777);
        string output = Path.Combine(dir, "out.gguf");
        int failedCleanly = 0;
        for (int v = 0; v < 60; v++)
        {
            string what = Corrupt(original, rng, subject.FileToCorrupt);
            if (File.Exists(output)) File.Delete(output);
            try
            {
                var (plan, input) = AnyBit.Quantization.ModelQuantizer.Plan(subject.ModelPath, new AnyBit.Quantization.QuantizeOptions { Format = "q8_0", KeepFloat = [new System.Text.RegularExpressions.Regex("token_embd|output")] });
                using (input) AnyBit.Quantization.ModelQuantizer.Write(plan, output);
                using var g = AnyBit.IO.GgufFile.Open(output);
            }
            catch (AnyBitException)
            {
                failedCleanly++;
                Assert.False(File.Exists(output), $"variant {v} ({what}) left an output file");
            }
            catch (Exception e)
            {
                Assert.Fail($"{kind} variant {v} ({what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            Assert.Empty(Directory.GetFiles(dir, "*.partial"));
        }
        Assert.True(failedCleanly > 0, $"no variant of {kind} was refused: the corruption did nothing");
    }
}
