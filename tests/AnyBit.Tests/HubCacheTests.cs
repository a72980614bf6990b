using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// Models in the Hugging Face cache as huggingface_hub lays it out: snapshot files are symbolic links into
/// ../../blobs/, refs/main names the snapshot's commit. The blobs here link on to the fixture's files.
/// </summary>
[Collection("Serial")] // sets HF_HUB_CACHE for the process
public class HubCacheTests
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";

    /// <summary>A cache holding gutenberg-llama as anybit/gutenberg-llama; returns its root.</summary>
    private static string MakeCache()
    {
        string root = Path.Combine(Shared.TempDir(), "hub");
        string repo = Path.Combine(root, "models--anybit--gutenberg-llama");
        string blobs = Path.Combine(repo, "blobs"), snapshot = Path.Combine(repo, "snapshots", Commit);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Commit);
        int i = 0;
        foreach (string file in Directory.GetFiles(Shared.Data("models", "gutenberg-llama")))
        {
            string blob = $"blob{i++:D4}";
            File.CreateSymbolicLink(Path.Combine(blobs, blob), file);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.Combine("..", "..", "blobs", blob));
        }
        return root;
    }

    private static float[] Logits(string model)
    {
        using var m = ModelLoader.Load(model);
        using var s = m.CreateSession(16);
        return s.Forward([1, 400, 29, 1033, 77, 5]).ToArray();
    }

    [Fact]
    public void A_snapshot_folder_of_links_and_its_model_id_run_as_the_folder_does()
    {
        string root = MakeCache();
        string snapshot = Path.Combine(root, "models--anybit--gutenberg-llama", "snapshots", Commit);
        var expected = Logits(Shared.Data("models", "gutenberg-llama"));
        Assert.Equal(expected, Logits(snapshot));
        string? saved = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", root);
            Assert.Equal(snapshot, HubCache.Resolve("anybit/gutenberg-llama"));
            Assert.Equal(snapshot, HubCache.Resolve("anybit/gutenberg-llama@main"));
            Assert.Equal(snapshot, HubCache.Resolve($"anybit/gutenberg-llama@{Commit}"));
            Assert.Equal(expected, Logits("anybit/gutenberg-llama"));
            var missing = Assert.Throws<InvalidModelFileException>(() => ModelLoader.Open("anybit/no-such-model"));
            Assert.Contains("models--anybit--no-such-model", missing.Message);
            Assert.DoesNotContain('\n', missing.Message);
            var revision = Assert.Throws<InvalidModelFileException>(() => ModelLoader.Open("anybit/gutenberg-llama@v2"));
            Assert.Contains("revision 'v2'", revision.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved);
        }
    }

    [Fact]
    public void The_cache_root_follows_huggingface_hub()
    {
        string? hub = Environment.GetEnvironmentVariable("HF_HUB_CACHE"), home = Environment.GetEnvironmentVariable("HF_HOME");
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", "/tmp/hf-home");
            Assert.Equal(Path.Combine("/tmp/hf-home", "hub"), HubCache.Root());
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", "/tmp/hf-hub");
            Assert.Equal("/tmp/hf-hub", HubCache.Root());
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", null);
            Assert.EndsWith(Path.Combine(".cache", "huggingface", "hub"), HubCache.Root());
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", hub);
            Environment.SetEnvironmentVariable("HF_HOME", home);
        }
    }
    [Fact]
    public void A_snapshot_of_a_gguf_repository_opens_its_one_gguf()
    {
        string snapshot = Path.Combine(Shared.TempDir(), "models--anybit--stories", "snapshots", Commit);
        Directory.CreateDirectory(snapshot);
        string gguf = Shared.Data("models", "stories260K", "stories260K.gguf");
        File.CreateSymbolicLink(Path.Combine(snapshot, "stories260K.gguf"), gguf);
        using (var m = ModelLoader.Load(gguf))
        using (var viaFolder = ModelLoader.Load(snapshot))
        using (var a = m.CreateSession(8))
        using (var b = viaFolder.CreateSession(8))
            Assert.Equal(a.Forward([1, 30, 40]).ToArray(), b.Forward([1, 30, 40]).ToArray());
        File.CreateSymbolicLink(Path.Combine(snapshot, "other.gguf"), gguf);
        var e = Assert.Throws<InvalidModelFileException>(() => ModelLoader.Open(snapshot));
        Assert.Contains("2 GGUF files", e.Message);
    }
}
