using System.Text.Json;

namespace AnyBit.Tests;

/// <summary>The accuracy commands end to end on a tiny fixture model: imatrix → quantize --imatrix, gptq, sweep (and its resume), and their errors.</summary>
public class AccuracyCliTests
{
    private static readonly string Model = Shared.Fixture("models", "llama3-bpe");
    private static readonly string Text = Shared.Data("text", "eval", "alice.txt");

    [Fact]
    public void Imatrix_then_quantize_with_it_and_gptq_with_rotation()
    {
        string dir = Shared.TempDir();
        try
        {
            string imatrix = Path.Combine(dir, "imatrix.gguf");
            var r = CliRunner.Run("imatrix", "-m", Model, "--text", Text, "--windows", "4", "--length", "64", "-o", imatrix);
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("quantize", "-m", Model, "-f", "int4:g64", "--imatrix", imatrix, "-o", Path.Combine(dir, "a.gguf"));
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("quantize", "-m", Model, "-f", "int3:g64", "--method", "gptq", "--rotate", "--calibration", Text,
                "--calibration-windows", "4", "--calibration-length", "64", "-o", Path.Combine(dir, "b.gguf"), "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("run", "-m", Path.Combine(dir, "b.gguf"), "--prompt", "Alice", "-n", "4", "--temperature", "0");
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("inspect", "-m", Path.Combine(dir, "b.gguf"), "--json");
            Assert.Contains("output.weight", r.Stdout); // rotation unties the head from the embedding
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(new[] { "--method", "gptq" }, "needs calibration text")]
    [InlineData(new[] { "--method", "magic" }, "--method 'magic'")]
    [InlineData(new[] { "--target-bpw", "-1" }, "--target-bpw")]
    [InlineData(new[] { "--target-size", "lots" }, "--target-size 'lots'")]
    [InlineData(new[] { "--method", "gptq", "--calibration", "/nonexistent.txt" }, "calibration file not found")]
    [InlineData(new[] { "--candidates", "q9_9", "--target-bpw", "3" }, "q9_9")]
    public void Bad_accuracy_options_fail_cleanly(string[] extra, string message)
    {
        string dir = Shared.TempDir();
        try
        {
            string output = Path.Combine(dir, "x.gguf");
            var r = CliRunner.Run(["quantize", "-m", Model, "-f", "int4:g64", "-o", output, .. extra]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.False(File.Exists(output));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Sweep_writes_the_report_and_charts_and_resumes_without_recomputing()
    {
        string dir = Shared.TempDir();
        try
        {
            string[] args = ["sweep", "-m", Model, "--formats", "q8_0,int4:g64", "--text", Text, "--max-tokens", "600", "--ctx", "128", "-o", dir];
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 0, r.Stderr);
            foreach (var f in new[] { "report.json", "report.md", "pareto-kl.png", "pareto-kl.svg", "pareto-ppl.png", "pareto-ppl.svg" })
                Assert.True(new FileInfo(Path.Combine(dir, f)).Length > 0, f);
            string first = File.ReadAllText(Path.Combine(dir, "report.json"));
            using (var doc = JsonDocument.Parse(first))
            {
                var points = doc.RootElement.EnumerateArray().ToList();
                Assert.Equal(2, points.Count);
                var q8 = points.Single(p => p.GetProperty("format").GetString() == "q8_0");
                var i4 = points.Single(p => p.GetProperty("format").GetString() == "int4:g64");
                Assert.True(q8.GetProperty("kl_mean").GetDouble() < i4.GetProperty("kl_mean").GetDouble());
                Assert.True(q8.GetProperty("bits_per_weight").GetDouble() > i4.GetProperty("bits_per_weight").GetDouble());
                Assert.True(q8.GetProperty("pareto").GetBoolean() && i4.GetProperty("pareto").GetBoolean());
            }
            Assert.False(Directory.Exists(Path.Combine(dir, "models")));
            // A second run finds both points done: the report is unchanged, and one more format is added.
            r = CliRunner.Run(["sweep", "-m", Model, "--formats", "q8_0,int4:g64,q4_0", "--text", Text, "--max-tokens", "600", "--ctx", "128", "-o", dir]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var again = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "report.json")));
            Assert.Equal(3, again.RootElement.GetArrayLength());
            using var before = JsonDocument.Parse(first);
            Assert.Equal(before.RootElement[0].GetProperty("kl_mean").GetDouble(), again.RootElement[0].GetProperty("kl_mean").GetDouble());
            Assert.Equal(before.RootElement[0].GetProperty("quantize_seconds").GetDouble(), again.RootElement[0].GetProperty("quantize_seconds").GetDouble());
            Assert.Contains("| q4_0 |", File.ReadAllText(Path.Combine(dir, "report.md")).Replace("**", ""));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
