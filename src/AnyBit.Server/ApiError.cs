using System.Text.Json;

namespace AnyBit.Server;

/// <summary>
/// A request the server refuses: an HTTP status and OpenAI's error object
/// (<c>{"error": {"message", "type", "param", "code"}}</c>), which OpenAI's clients turn into readable exceptions.
/// </summary>
public sealed class ApiError(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null) : Exception(message)
{
    /// <summary>HTTP status code.</summary>
    public int Status { get; } = status;

    /// <summary>OpenAI error type.</summary>
    public string Type { get; } = type;

    /// <summary>The request field at fault, if any.</summary>
    public string? Param { get; } = param;

    /// <summary>Machine-readable code, if any.</summary>
    public string? Code { get; } = code;

    /// <summary>A 400 naming the field at fault.</summary>
    public static ApiError BadField(string param, string message) => new(400, message, param: param);

    /// <summary>The JSON body.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
    {
        ["error"] = new Dictionary<string, object?> { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    }, Relaxed);

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
