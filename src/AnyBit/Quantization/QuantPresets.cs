namespace AnyBit.Quantization;

/// <summary>
/// llama.cpp's mixes as presets over format specs, with its rules for which tensors get more bits
/// (llama-quant.cpp's llama_tensor_get_type, for the dense Llama-style models AnyBit runs).
/// </summary>
public static class QuantPresets
{
    public static readonly string[] Names = ["q2_k_mix", "q3_k_m", "q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q3_k_s"];

    /// <summary>llama.cpp's file type (<c>general.file_type</c>) of each mix it has; q2_k_mix is AnyBit's own.</summary>
    private static readonly Dictionary<string, uint> FileTypes = new()
    {
        ["q3_k_s"] = 11, ["q3_k_m"] = 12, ["q4_k_s"] = 14, ["q4_k_m"] = 15, ["q5_k_s"] = 16, ["q5_k_m"] = 17,
    };

    /// <summary>The file type of a file quantized with <paramref name="spec"/> (a ggml type or a preset); null where llama.cpp has none.</summary>
    public static uint? FileType(string spec)
    {
        string s = spec.Trim().ToLowerInvariant();
        return Formats.FormatTable.ByName(s)?.FileType ?? (FileTypes.TryGetValue(s, out uint t) ? t : null);
    }

    public static bool IsPreset(string spec) => Names.Contains(spec.Trim().ToLowerInvariant());

    /// <summary>llama.cpp's "use_more_bits": the first and last eighth of the layers, and every third in between.</summary>
    private static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>The spec a preset gives a tensor (GGUF name), or null for "keep float" tensors decided elsewhere.</summary>
    public static string SpecFor(string preset, string name, int layer, int layers, bool isOutputHead)
    {
        preset = preset.ToLowerInvariant();
        if (isOutputHead) return "q6_k";
        bool attnV = name.Contains("attn_v.weight"), ffnDown = name.Contains("ffn_down.weight"), attnOut = name.Contains("attn_output.weight");
        return preset switch
        {
            "q4_k_m" => (attnV || ffnDown) && UseMoreBits(layer, layers) ? "q6_k" : "q4_k",
            "q5_k_m" => (attnV || ffnDown) && UseMoreBits(layer, layers) ? "q6_k" : "q5_k",
            "q3_k_m" => attnV ? "q4_k" : ffnDown ? (layer < layers / 16 ? "q5_k" : "q4_k") : attnOut ? "q4_k" : "q3_k",
            "q2_k_mix" => attnV || attnOut || ffnDown ? "q3_k" : "q2_k",
            "q4_k_s" => "q4_k",
            "q5_k_s" => "q5_k",
            "q3_k_s" => "q3_k",
            _ => throw new AnyBitException($"unknown preset '{preset}'"),
        };
    }
}
