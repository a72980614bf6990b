using System.Text.Json;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// Quantized Hugging Face checkpoints, run as stored: the table of <see cref="CheckpointScheme"/>s by
/// <c>quant_method</c>, and the store that presents each quantized module as one AnyBit tensor under its
/// <c>.weight</c> name.
/// </summary>
public static class QuantizedCheckpoint
{
    /// <summary>Every scheme this version reads.</summary>
    public static IReadOnlyList<CheckpointScheme> Schemes { get; } =
        [new GptqScheme(), new AwqScheme(), new CompressedTensorsScheme(), new BitsAndBytesScheme(), new Fp8Scheme(), new Mxfp4Scheme()];

    /// <summary>
    /// The store of <paramref name="raw"/> as the model sees it: itself for an unquantized checkpoint, else its
    /// modules converted by the scheme <c>config.json</c>'s <c>quantization_config</c> names. <paramref name="description"/>
    /// says which ("GPTQ int4 g128 asym (v1)"), or is null. Takes ownership of <paramref name="raw"/> on success.
    /// </summary>
    public static ITensorStore Open(ITensorStore raw, string configPath, out string? description)
    {
        description = null;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath), new JsonDocumentOptions { MaxDepth = 32, AllowTrailingCommas = true });
        var root = doc.RootElement;
        if (!root.TryGetProperty("quantization_config", out var config) && !root.TryGetProperty("compression_config", out config)) return raw;
        if (config.ValueKind != JsonValueKind.Object) throw new InvalidModelFileException(configPath, "quantization_config is not an object");
        string method = ConfigValues.Str(config, "quant_method")
            ?? throw new InvalidModelFileException(configPath, "quantization_config has no quant_method");
        var scheme = Schemes.FirstOrDefault(s => s.Methods.Contains(method))
            ?? throw new InvalidModelFileException(configPath, $"quant_method '{method}' is not supported (supported: {string.Join(", ", Schemes.SelectMany(s => s.Methods))})");
        var reader = scheme.Open(config, configPath);
        description = reader.Description;
        return RepackedStore.Create(raw, reader, configPath);
    }
}
