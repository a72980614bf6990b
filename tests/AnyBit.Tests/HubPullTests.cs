using System.Text.Json;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// <c>anybit pull</c> against a real Hub server on loopback (<see cref="LoopbackHub"/>) serving gutenberg-llama's files:
/// the cache it writes is huggingface_hub's layout byte for byte, a broken transfer resumes with a Range request, and a
/// file whose bytes do not match its sha256 is refused without leaving anything behind. The library tests pass the
/// endpoint and cache as parameters; the CLI tests give them to the child process's environment.
/// </summary>
public class HubPullTests
{
    private const string Id = "anybit/gutenberg-llama", Commit = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    private const string Shard1 = "model-00001-of-00005.safetensors", Shard2 = "model-00002-of-00005.safetensors";
    private static string GutenbergLlama => Shared.Data("models", "gutenberg-llama");

    private static LoopbackHub Hub(params string[] files) =>
        new(Id, Commit, files.Select(f => (f, Path.Combine(GutenbergLlama, f))));

    private static HubPullOptions Options(LoopbackHub hub, string cache) => new() { Endpoint = hub.Endpoint, Cache = cache };

    private static Dictionary<string, string?> Env(LoopbackHub hub, string cache, string? token = null) => new()
    {
        ["HF_ENDPOINT"] = hub.Endpoint,
        ["HF_HUB_CACHE"] = cache,
        ["HF_TOKEN"] = token,
        ["HF_TOKEN_PATH"] = Path.Combine(cache, "no-token"), // no token saved by a login on this machine leaks in
    };

    private static CliRunner.Result Pull(Dictionary<string, string?> env, params string[] args) => CliRunner.RunWithEnvironment("", env, ["pull", .. args]);

    private static string Repo(string cache) => Path.Combine(cache, "models--anybit--gutenberg-llama");

    /// <summary>Blob, link and ref of every served file as huggingface_hub writes them, and nothing else.</summary>
    private static void AssertLayout(string cache, LoopbackHub hub)
    {
        string repo = Repo(cache), snapshot = Path.Combine(repo, "snapshots", Commit);
        Assert.Equal(hub.Files.Select(f => f.Etag).Distinct().Order(), Directory.GetFiles(Path.Combine(repo, "blobs")).Select(Path.GetFileName).Order());
        Assert.Equal(hub.Files.Select(f => f.Path).Order(StringComparer.Ordinal),
            Directory.GetFiles(snapshot, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(snapshot, p).Replace('\\', '/')).Order(StringComparer.Ordinal));
        foreach (var f in hub.Files)
        {
            Assert.Equal(File.ReadAllBytes(f.Source), File.ReadAllBytes(Path.Combine(repo, "blobs", f.Etag)));
            var link = new FileInfo(Path.Combine(snapshot, f.Path));
            string up = string.Concat(Enumerable.Repeat("../", f.Path.Count(c => c == '/') + 2));
            Assert.Equal($"{up}blobs/{f.Etag}", link.LinkTarget);
        }
        Assert.Equal(["main"], Directory.GetFiles(Path.Combine(repo, "refs")).Select(Path.GetFileName));
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(repo, "refs", "main")));
        Assert.Equal(["blobs", "refs", "snapshots"], Directory.GetFileSystemEntries(repo).Select(Path.GetFileName).Order());
    }

    private static int[] GreedyIds(string model)
    {
        var r = CliRunner.Run("run", "--model", model, "--prompt", "It was a dark and stormy night", "--temperature", "0", "-n", "6", "--ignore-eos", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("generated_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
    }

    [Fact]
    public void Pull_writes_huggingface_hubs_cache_layout_which_run_opens_by_model_id()
    {
        string cache = Shared.TempDir(), extra = Path.Combine(Shared.TempDir(), "params.json");
        File.WriteAllText(extra, """{"dim": 256, "n_layers": 4}""");
        // A nested file gets one more ../ per level; a file with the same bytes as another shares its blob.
        using var hub = LoopbackHub.FromFolder(Id, Commit, GutenbergLlama, ("original/sub/params.json", extra), ("original/config.json", Path.Combine(GutenbergLlama, "config.json")));
        var r = Pull(Env(hub, cache), Id);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith($"pulled {Id}@main (commit {Commit}): {hub.Files.Count} files, {hub.Files.Count - 1} downloaded", r.Stdout);
        Assert.Equal(hub.File("config.json").Etag, hub.File("original/config.json").Etag);
        AssertLayout(cache, hub);
        // LFS files came from the CDN address the HEAD's redirect named, with the sha256 of X-Linked-Etag, not the weak ETag.
        Assert.Contains(hub.Requests, q => q.Method == "GET" && q.Path == $"/cdn/{hub.File(Shard1).Etag}");

        // Pulled again: the snapshot is complete, nothing is fetched, nothing changes.
        int before = hub.Requests.Count;
        var again = Pull(Env(hub, cache), $"{Id}@main");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Contains($"{hub.Files.Count} files, 0 downloaded", again.Stdout);
        Assert.Equal(["/api/models/anybit/gutenberg-llama/revision/main"], hub.Requests.Skip(before).Select(q => q.Path));
        AssertLayout(cache, hub);

        string snapshot = Path.Combine(Repo(cache), "snapshots", Commit);
        Assert.Equal(snapshot, HubCache.Resolve(Id, cache));
        Assert.Equal(snapshot, HubCache.Resolve($"{Id}@{Commit}", cache));
        var expected = GreedyIds(GutenbergLlama);
        var viaId = CliRunner.RunWithEnvironment("", Env(hub, cache), "run", "--model", Id, "--prompt", "It was a dark and stormy night", "--temperature", "0", "-n", "6", "--ignore-eos", "--json");
        Assert.True(viaId.ExitCode == 0, viaId.Stderr);
        Assert.Equal(expected, JsonDocument.Parse(viaId.Stdout).RootElement.GetProperty("generated_ids").EnumerateArray().Select(x => x.GetInt32()));
    }

    [Fact]
    public async Task A_transfer_broken_off_is_kept_incomplete_and_the_next_pull_resumes_it_with_a_range_request()
    {
        string cache = Shared.TempDir();
        using var hub = Hub("config.json", Shard1);
        var shard = hub.File(Shard1);
        hub.DropGets[Shard1] = 1;
        var e = await Assert.ThrowsAsync<AnyBitException>(() => HubDownloader.PullAsync(Id, Options(hub, cache) with { Retries = 0 }));
        Assert.Contains(Shard1, e.Message);
        Assert.Contains("pull again to resume", e.Message);
        string blob = Path.Combine(Repo(cache), "blobs", shard.Etag), incomplete = blob + ".incomplete";
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(Path.Combine(Repo(cache), "snapshots", Commit, Shard1)));
        Assert.False(Directory.Exists(Path.Combine(Repo(cache), "refs")));
        long have = new FileInfo(incomplete).Length;
        Assert.InRange(have, 1, hub.DropAfterBytes); // what arrived before the connection broke (all of it unless the reset outran the reads)
        Assert.Equal(File.ReadAllBytes(shard.Source)[..(int)have], File.ReadAllBytes(incomplete));

        var result = await HubDownloader.PullAsync(Id, Options(hub, cache));
        Assert.Contains(hub.Requests, q => q.Method == "GET" && q.Path == $"/cdn/{shard.Etag}" && q.Range == $"bytes={have}-");
        Assert.Equal(2, hub.Requests.Count(q => q.Method == "GET" && q.Path == $"/cdn/{shard.Etag}"));
        Assert.Equal(Path.Combine(Repo(cache), "snapshots", Commit), result.Snapshot);
        Assert.False(File.Exists(incomplete));
        AssertLayout(cache, hub);
    }

    [Fact]
    public async Task A_dropped_connection_is_resumed_within_the_same_pull()
    {
        string cache = Shared.TempDir();
        using var hub = Hub(Shard2);
        var shard = hub.File(Shard2);
        hub.DropGets[Shard2] = 2;
        hub.DropAfterBytes = 1 << 20;
        var result = await HubDownloader.PullAsync(Id, Options(hub, cache));
        Assert.True(result.Files.Single().Downloaded);
        var gets = hub.Requests.Where(q => q.Method == "GET" && q.Path == $"/cdn/{shard.Etag}").Select(q => q.Range).ToArray();
        Assert.Equal(3, gets.Length);
        Assert.Null(gets[0]);
        // Each retry asks for the bytes after those it has (1 MiB per broken transfer, unless a reset outran the reads).
        long[] from = gets[1..].Select(r => long.Parse(r!["bytes=".Length..].TrimEnd('-'))).ToArray();
        Assert.InRange(from[0], 1, 1 << 20);
        Assert.InRange(from[1], from[0] + 1, from[0] + (1 << 20));
        AssertLayout(cache, hub);
    }

    [Fact]
    public async Task A_partial_file_in_the_cache_is_resumed_and_a_wrong_one_is_refused_and_deleted()
    {
        string cache = Shared.TempDir();
        using var hub = Hub("tokenizer.json");
        var file = hub.File("tokenizer.json");
        string incomplete = Path.Combine(Repo(cache), "blobs", file.Etag + ".incomplete");
        Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
        byte[] bytes = File.ReadAllBytes(file.Source);
        bytes[100] ^= 1; // a prefix that is not the file's: the sha256 catches it after the resume
        File.WriteAllBytes(incomplete, bytes[..200_000]);
        var e = await Assert.ThrowsAsync<AnyBitException>(() => HubDownloader.PullAsync(Id, Options(hub, cache)));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("sha256", e.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(Repo(cache), "blobs")));
        Assert.False(Directory.Exists(Path.Combine(Repo(cache), "snapshots", Commit)) && Directory.EnumerateFileSystemEntries(Path.Combine(Repo(cache), "snapshots", Commit)).Any());

        bytes[100] ^= 1;
        File.WriteAllBytes(incomplete, bytes[..200_000]);
        await HubDownloader.PullAsync(Id, Options(hub, cache));
        Assert.Equal(["bytes=200000-", "bytes=200000-"], hub.Requests.Where(q => q.Method == "GET" && q.Path == $"/cdn/{file.Etag}").Select(q => q.Range));
        AssertLayout(cache, hub);
    }

    [Fact]
    public void A_file_whose_bytes_do_not_match_its_sha256_is_refused_with_nothing_left_in_the_cache()
    {
        string cache = Shared.TempDir();
        using var hub = Hub("config.json", Shard2);
        var shard = hub.File(Shard2);
        byte[] bad = File.ReadAllBytes(shard.Source);
        bad[bad.Length / 2] ^= 0x40;
        hub.Corrupt[Shard2] = bad;
        var r = Pull(Env(hub, cache), Id, "--max-workers", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(1, r.Stderr.Trim().Split('\n').Count(l => l.StartsWith("error: ", StringComparison.Ordinal)));
        string error = r.Stderr.Trim().Split('\n').Last();
        Assert.StartsWith("error: ", error);
        Assert.Contains(Shard2, error);
        Assert.Contains($"does not match the Hub's {shard.Etag}", error);
        Assert.Empty(r.Stdout);
        string blobs = Path.Combine(Repo(cache), "blobs");
        Assert.DoesNotContain(Directory.GetFiles(blobs), p => Path.GetFileName(p).StartsWith(shard.Etag, StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(Repo(cache), "snapshots", Commit, Shard2)));
        Assert.False(new FileInfo(Path.Combine(Repo(cache), "snapshots", Commit, Shard2)).LinkTarget is not null);
        Assert.False(File.Exists(Path.Combine(Repo(cache), "refs", "main")));

        hub.Corrupt.Clear();
        var fixedRun = Pull(Env(hub, cache), Id);
        Assert.True(fixedRun.ExitCode == 0, fixedRun.Stderr);
        AssertLayout(cache, hub);
    }

    [Fact]
    public async Task Include_patterns_pull_only_the_files_they_match()
    {
        string cache = Shared.TempDir();
        using var hub = LoopbackHub.FromFolder(Id, Commit, GutenbergLlama);
        var result = await HubDownloader.PullAsync(Id, Options(hub, cache) with { Include = ["*.json", "tokenizer*"] });
        string[] expected = hub.Files.Select(f => f.Path).Where(p => p.EndsWith(".json", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray();
        Assert.Contains("tokenizer.json", expected);
        Assert.Equal(expected, result.Files.Select(f => f.Path).Order(StringComparer.Ordinal));
        string snapshot = Path.Combine(Repo(cache), "snapshots", Commit);
        Assert.Equal(expected, Directory.GetFiles(snapshot).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(hub.Requests, q => q.Path.EndsWith(".safetensors") || hub.Files.Any(f => f.Path.EndsWith(".safetensors") && q.Path.EndsWith(f.Etag)));
        foreach (string p in expected) Assert.Equal(File.ReadAllBytes(hub.File(p).Source), File.ReadAllBytes(Path.Combine(snapshot, p)));

        var none = await Assert.ThrowsAsync<AnyBitException>(() => HubDownloader.PullAsync(Id, Options(hub, cache) with { Include = ["*.gguf"] }));
        Assert.Contains("no file of anybit/gutenberg-llama@main matches --include *.gguf", none.Message);
    }

    [Theory]
    [InlineData("*.safetensors", "model-00001-of-00005.safetensors", true)]
    [InlineData("*.safetensors", "onnx/model.safetensors", true)] // fnmatch's * crosses folders
    [InlineData("*.json", "config.json.bak", false)]
    [InlineData("config.json", "config.json", true)]
    [InlineData("config.json", "sub/config.json", false)]
    [InlineData("model-0000?-of-00005.safetensors", "model-00003-of-00005.safetensors", true)]
    [InlineData("model-0000[12]-*", "model-00003-of-00005.safetensors", false)]
    [InlineData("model-0000[!12]-*", "model-00003-of-00005.safetensors", true)]
    [InlineData("original/", "original/params.json", true)]
    [InlineData("original/", "originals.json", false)]
    [InlineData("a+b(c).txt", "a+b(c).txt", true)]
    [InlineData("[x", "[x", true)]
    [InlineData("*.JSON", "config.json", false)]
    public void Include_patterns_match_as_fnmatch_does(string pattern, string path, bool matches) =>
        Assert.Equal(matches, HubGlob.MatchesAny(path, [pattern]));

    [Fact]
    public async Task Ctrl_C_leaves_only_an_incomplete_file_which_the_next_pull_resumes()
    {
        string cache = Shared.TempDir();
        using var hub = Hub(Shard1);
        var shard = hub.File(Shard1);
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => HubDownloader.PullAsync(Id, Options(hub, cache), new CancelOnFirstBytes(cts), cts.Token));
        string incomplete = Path.Combine(Repo(cache), "blobs", shard.Etag + ".incomplete");
        Assert.Equal([incomplete], Directory.GetFiles(Path.Combine(Repo(cache), "blobs")));
        long have = new FileInfo(incomplete).Length;
        Assert.InRange(have, 1, shard.Size - 1);
        Assert.False(Directory.Exists(Path.Combine(Repo(cache), "snapshots")));
        Assert.False(Directory.Exists(Path.Combine(Repo(cache), "refs")));

        await HubDownloader.PullAsync(Id, Options(hub, cache));
        Assert.Equal($"bytes={have}-", hub.Requests.Last(q => q.Method == "GET").Range);
        AssertLayout(cache, hub);
    }

    private sealed class CancelOnFirstBytes(CancellationTokenSource cts) : IHubPullProgress
    {
        public void Started(string path, long size, long have) { }
        public void Advanced(string path, long bytes) => cts.Cancel();
        public void Finished(string path, long size, bool downloaded) { }
    }

    [Fact]
    public async Task A_renamed_repository_is_followed_through_the_hubs_relative_redirects()
    {
        string cache = Shared.TempDir();
        using var hub = Hub("config.json", "tokenizer.json");
        hub.RenamedFrom = "anybit/old-name";
        var result = await HubDownloader.PullAsync("anybit/old-name", Options(hub, cache));
        Assert.Equal(2, result.Files.Count);
        Assert.Contains(hub.Requests, q => q.Method == "HEAD" && q.Path == $"/anybit/old-name/resolve/{Commit}/config.json");
        Assert.Contains(hub.Requests, q => q.Method == "HEAD" && q.Path == $"/{Id}/resolve/{Commit}/config.json");
        // The cache keeps the id asked for, as huggingface_hub does.
        string snapshot = Path.Combine(cache, "models--anybit--old-name", "snapshots", Commit);
        Assert.Equal(snapshot, HubCache.Resolve("anybit/old-name", cache));
        Assert.Equal(File.ReadAllBytes(hub.File("tokenizer.json").Source), File.ReadAllBytes(Path.Combine(snapshot, "tokenizer.json")));
    }

    [Fact]
    public void Missing_repositories_revisions_and_gated_models_are_one_line_errors()
    {
        string cache = Shared.TempDir();
        using var hub = Hub("config.json", "tokenizer.json");
        void AssertError(CliRunner.Result r, params string[] parts)
        {
            Assert.Equal(1, r.ExitCode);
            string line = Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.StartsWith("error: ", line);
            foreach (string p in parts) Assert.Contains(p, line);
        }
        AssertError(Pull(Env(hub, cache), "anybit/no-such-model"), $"no model anybit/no-such-model on {hub.Endpoint}", "HF_TOKEN");
        AssertError(Pull(Env(hub, cache), $"{Id}@v9"), $"{Id} has no revision 'v9'");
        AssertError(Pull(Env(hub, cache), "not a model id"), "'not a model id' is not a model id");
        using (var closed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            closed.Start();
            int port = ((System.Net.IPEndPoint)closed.LocalEndpoint).Port;
            closed.Stop();
            AssertError(CliRunner.RunWithEnvironment("", new Dictionary<string, string?>(Env(hub, cache)) { ["HF_ENDPOINT"] = $"http://127.0.0.1:{port}" }, "pull", Id),
                $"cannot reach http://127.0.0.1:{port}");
        }

        hub.RequiredToken = "hf_loopback_secret";
        AssertError(Pull(Env(hub, cache), Id), $"{Id} is gated", "HF_TOKEN");
        AssertError(Pull(Env(hub, cache, "hf_wrong"), Id), $"{Id} is gated");
        Assert.False(Directory.Exists(Path.Combine(Repo(cache), "snapshots")));
        int before = hub.Requests.Count;
        // The token huggingface-cli login saves is used when HF_TOKEN is not set.
        string tokenFile = Path.Combine(Shared.TempDir(), "token");
        File.WriteAllText(tokenFile, "hf_loopback_secret\n");
        var ok = CliRunner.RunWithEnvironment("", new Dictionary<string, string?>(Env(hub, cache)) { ["HF_TOKEN_PATH"] = tokenFile }, "pull", Id);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        AssertLayout(cache, hub);
        // The token goes to the Hub, never to the CDN the LFS files are redirected to.
        var sent = hub.Requests.Skip(before).ToArray();
        Assert.All(sent.Where(q => !q.Path.StartsWith("/cdn/")), q => Assert.Equal("Bearer hf_loopback_secret", q.Authorization));
        Assert.Contains(sent, q => q.Path.StartsWith("/cdn/"));
        Assert.All(sent.Where(q => q.Path.StartsWith("/cdn/")), q => Assert.Null(q.Authorization));
    }
}
