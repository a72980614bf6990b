namespace AnyBit.Server;

/// <summary>How <c>anybit serve</c> listens and what it accepts.</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind; loopback unless the user asks for more.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (printed at start-up).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every endpoint but /health requires <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Largest request body accepted (413 beyond it).</summary>
    public long MaxBodyBytes { get; init; } = 4 << 20;

    /// <summary>Largest max_tokens a request may ask for (400 beyond it).</summary>
    public int MaxTokensLimit { get; init; } = 4096;

    /// <summary>Tokens generated when a chat request gives no max_tokens (bounded by the context).</summary>
    public int DefaultChatMaxTokens { get; init; } = 512;

    /// <summary>Name reported by /v1/models and in responses; the model's file name when null.</summary>
    public string? ModelAlias { get; init; }
}
