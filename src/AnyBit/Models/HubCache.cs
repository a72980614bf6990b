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
    public static string Resolve(string path) => Resolve(path, Root());

    /// <summary><see cref="Resolve(string)"/> in the cache at <paramref name="cache"/>.</summary>
    public static string Resolve(string path, string cache)
    {
        if (File.Exists(path) || Directory.Exists(path)) return path;
        if (!TryParseId(path, out string id, out string revision)) return path;
        string repo = RepoFolder(cache, id);
        if (!Directory.Exists(repo))
            throw new InvalidModelFileException(path, $"no such file or folder, nor model {id} in the Hugging Face cache ({repo}; the cache is HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)");
        string refFile = Path.Combine(repo, "refs", revision);
        string commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : revision;
        string snapshot = Path.Combine(repo, "snapshots", commit);
        if (commit.Length == 0 || commit.Contains("..") || !Directory.Exists(snapshot))
            throw new InvalidModelFileException(path, $"model {id} is in the Hugging Face cache ({repo}) but revision '{revision}' is not (no refs/{revision} or snapshots/{revision})");
        return snapshot;
    }

    /// <summary>
    /// Splits a model id <c>ORG/NAME[@REVISION]</c> into the repository id and the revision (<c>main</c> when none is
    /// given); false for text that is no model id, or names a revision with a <c>..</c> segment.
    /// </summary>
    public static bool TryParseId(string text, out string id, out string revision)
    {
        var m = IdPattern().Match(text);
        id = m.Success ? m.Groups["id"].Value : "";
        revision = m.Success && m.Groups["rev"].Success ? m.Groups["rev"].Value : "main";
        return m.Success && !revision.Split('/').Contains("..");
    }

    /// <summary>The folder of repository <paramref name="id"/> (ORG/NAME) in a cache: <c>models--ORG--NAME</c>.</summary>
    public static string RepoFolder(string cache, string id) => Path.Combine(cache, "models--" + id.Replace("/", "--"));

    /// <summary>The hub cache folder huggingface_hub uses in this environment.</summary>
    public static string Root()
    {
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) return hub;
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return Path.Combine(home, "hub");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub");
    }
}
