namespace AnyBit.Models;

/// <summary>
/// The Hub server and the credentials huggingface_hub would use in this environment: <c>HF_ENDPOINT</c> (else
/// https://huggingface.co), and <c>HF_TOKEN</c>, else the token <c>huggingface-cli login</c> saved
/// (<c>HF_TOKEN_PATH</c>, else <c>HF_HOME/token</c>, else <c>~/.cache/huggingface/token</c>).
/// </summary>
public static class HubEnvironment
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The Hub's base address, without a trailing slash.</summary>
    public static string Endpoint() =>
        (Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : DefaultEndpoint).TrimEnd('/');

    /// <summary>The access token for gated and private repositories, or null when none is set.</summary>
    public static string? Token()
    {
        if (Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } token) return token.Trim();
        string file = Environment.GetEnvironmentVariable("HF_TOKEN_PATH") is { Length: > 0 } path ? path
            : Path.Combine(Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home ? home
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface"), "token");
        try
        {
            return File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } saved ? saved : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
