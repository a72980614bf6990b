using System.Text.RegularExpressions;

namespace AnyBit.Models;

/// <summary>
/// Hugging Face Hub model ids (<c>ORG/NAME[@REVISION]</c>) resolved to their snapshot folder in the local cache, laid
/// out as huggingface_hub writes it, so that a cache is shared with the Python tools:
/// <c>models--ORG--NAME/refs/REVISION</c> holds a commit hash, <c>snapshots/COMMIT/</c> the files (links into
/// <c>../../blobs/</c>). The cache is <c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>,
/// as huggingface_hub looks for it.
/// </summary>
public static partial class HubCache
{
    [GeneratedRegex(@"^(?<id>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(@(?<rev>[\w./-]+))?$")]
    private static partial Regex IdPattern();

    /// <summary>
    /// <paramref name="path"/> itself where it names a file or folder, or no model id; otherwise the snapshot folder of
    /// the model id it is, or a one-line error naming where the cache was looked for.
    /// </summary>
    public static string Resolve(string path)
    {
        if (File.Exists(path) || Directory.Exists(path)) return path;
        var m = IdPattern().Match(path);
        if (!m.Success) return path;
        string id = m.Groups["id"].Value;
        string revision = m.Groups["rev"].Success ? m.Groups["rev"].Value : "main";
        string cache = Root();
        string repo = Path.Combine(cache, "models--" + id.Replace("/", "--"));
        if (!Directory.Exists(repo))
            throw new InvalidModelFileException(path, $"no such file or folder, nor model {id} in the Hugging Face cache ({repo}; the cache is HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)");
        string refFile = Path.Combine(repo, "refs", revision);
        string commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : revision;
        string snapshot = Path.Combine(repo, "snapshots", commit);
        if (commit.Length == 0 || commit.Contains("..") || !Directory.Exists(snapshot))
            throw new InvalidModelFileException(path, $"model {id} is in the Hugging Face cache ({repo}) but revision '{revision}' is not (no refs/{revision} or snapshots/{revision})");
        return snapshot;
    }

    /// <summary>The hub cache folder huggingface_hub uses in this environment.</summary>
    public static string Root()
    {
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) return hub;
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return Path.Combine(home, "hub");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub");
    }
}
