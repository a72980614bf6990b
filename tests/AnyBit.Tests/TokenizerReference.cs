using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AnyBit.Tests;

/// <summary>
/// What the independent reference, @lenml/tokenizers (a transformers.js fork) with the published tokenizers of
/// @lenml/tokenizer-*, gives for <see cref="TokenizerCorpus"/> and <see cref="Conversation"/>. The packages are
/// installed by tests/tokenizers/install.sh (CI runs it); one Node process computes everything, and its output is
/// cached in tests/tokenizers/.cache under a hash of the request, the lock file and the script, so later runs
/// read a file.
/// </summary>
public static class TokenizerReference
{
    /// <summary>The published tokenizers: @lenml/tokenizer-NAME.</summary>
    public static readonly string[] Names = ["gemma3", "gptoss", "llama3_1", "qwen3", "deepseek_v3", "llama2"];

    /// <summary>A short conversation with every role the templates handle, rendered with add_generation_prompt.</summary>
    public static readonly (string Role, string Content)[] Conversation =
    [
        ("system", "You are a helpful assistant."),
        ("user", "Hi! What's 2 + 2?"),
        ("assistant", "2 + 2 = 4."),
        ("user", "And in Chinese? 谢谢 🙏"),
    ];

    public sealed record Expected(int[][] Ids, int[][] IdsWithSpecial, string[] Decoded, string? ChatTemplate, string? Chat, string? ChatError);

    public static IReadOnlyList<string> Texts { get; } = TokenizerCorpus.Lines();

    /// <summary>tests/tokenizers in the repository.</summary>
    public static string PackageFolder { get; } = FindPackageFolder();

    /// <summary>The published tokenizer.json and tokenizer_config.json of one tokenizer: a tokenizer-only folder.</summary>
    public static string ModelFolder(string name)
    {
        string folder = Path.Combine(PackageFolder, "node_modules", "@lenml", "tokenizer-" + name, "models");
        if (!File.Exists(Path.Combine(folder, "tokenizer.json"))) throw MissingPackages();
        return folder;
    }

    private static readonly Lazy<(Dictionary<string, Expected> Tokenizers, Dictionary<string, string[]> Normalized)> All = new(Compute);

    public static Expected For(string name) => All.Value.Tokenizers[name];

    /// <summary>The corpus in a normalization form ("NFC", "NFD", "NFKC", "NFKD"), by Node's String.normalize.</summary>
    public static string[] Normalized(string form) => All.Value.Normalized[form];

    private static string FindPackageFolder()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AnyBit.slnx"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException("cannot find the repository root (AnyBit.slnx) above " + AppContext.BaseDirectory);
        return Path.Combine(dir.FullName, "tests", "tokenizers");
    }

    private static Exception MissingPackages() => new InvalidOperationException(
        $"the reference tokenizers are not installed in {Path.Combine(PackageFolder, "node_modules")}: run tests/tokenizers/install.sh (needs Node 18+ and npm)");

    private static (Dictionary<string, Expected>, Dictionary<string, string[]>) Compute()
    {
        if (!Directory.Exists(Path.Combine(PackageFolder, "node_modules", "@lenml", "tokenizers"))) throw MissingPackages();
        string request = JsonSerializer.Serialize(new
        {
            tokenizers = Names,
            texts = Texts,
            conversation = Conversation.Select(t => new { role = t.Role, content = t.Content }),
        });
        string key = Hash(request, File.ReadAllText(Path.Combine(PackageFolder, "package-lock.json")), File.ReadAllText(Path.Combine(PackageFolder, "reference.js")));
        string cache = Path.Combine(PackageFolder, ".cache");
        string output = Path.Combine(cache, $"reference-{key}.json");
        if (!File.Exists(output)) RunNode(request, cache, output);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(output));
        var result = new Dictionary<string, Expected>();
        foreach (string name in Names)
        {
            var e = doc.RootElement.GetProperty(name);
            result[name] = new Expected(
                IdLists(e.GetProperty("ids")), IdLists(e.GetProperty("idsWithSpecial")),
                e.GetProperty("decoded").EnumerateArray().Select(x => x.GetString()!).ToArray(),
                e.GetProperty("chatTemplate").GetString(), e.GetProperty("chat").GetString(), e.GetProperty("chatError").GetString());
        }
        var normalized = doc.RootElement.GetProperty("normalized").EnumerateObject()
            .ToDictionary(f => f.Name, f => f.Value.EnumerateArray().Select(x => x.GetString()!).ToArray());
        return (result, normalized);
    }

    private static int[][] IdLists(JsonElement e) => e.EnumerateArray().Select(l => l.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();

    private static string Hash(params string[] parts)
    {
        var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in parts) { h.AppendData(Encoding.UTF8.GetBytes(p)); h.AppendData([0]); }
        return Convert.ToHexString(h.GetHashAndReset())[..16].ToLowerInvariant();
    }

    private static void RunNode(string request, string cache, string output)
    {
        Directory.CreateDirectory(cache);
        string requestPath = Path.Combine(cache, $"request-{Environment.ProcessId}.json");
        string partial = output + $".{Environment.ProcessId}.partial";
        File.WriteAllText(requestPath, request);
        var psi = new ProcessStartInfo("node") { WorkingDirectory = PackageFolder, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("reference.js");
        psi.ArgumentList.Add(requestPath);
        psi.ArgumentList.Add(partial);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run node ({e.Message}): the tokenizer reference needs Node 18+", e);
        }
        using (p)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException("node reference.js ran over 5 minutes"); }
            if (p.ExitCode != 0) throw new InvalidOperationException($"node reference.js failed ({p.ExitCode}): {stderr.Result}");
        }
        File.Move(partial, output, overwrite: true);
        File.Delete(requestPath);
    }
}
