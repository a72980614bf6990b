using System.Text.RegularExpressions;

namespace AnyBit.Quantization;

/// <summary>What <c>anybit quantize</c> was asked to do.</summary>
public sealed record QuantizeOptions
{
    /// <summary>Default format (or preset such as q4_k_m) for weight matrices.</summary>
    public required string Format { get; init; }

    /// <summary>llama-quantize's --pure: no mix; every matrix gets <see cref="Format"/>'s one type (<see cref="QuantPresets.PureSpec"/>).</summary>
    public bool Pure { get; init; }

    /// <summary>The preset whose mix chooses each matrix's type, or null when <see cref="Format"/> is one format for all.</summary>
    public string? Preset => !Pure && QuantPresets.IsPreset(Format) ? Format : null;

    /// <summary>Per-tensor overrides: tensors whose GGUF name matches the regex get the spec (first match wins).</summary>
    public IReadOnlyList<(Regex Pattern, string Spec)> TensorTypes { get; init; } = [];

    /// <summary>Format of the output head (output.weight, or the tied embedding).</summary>
    public string? OutputTensorType { get; init; }

    /// <summary>Format of token_embd.weight.</summary>
    public string? TokenEmbeddingType { get; init; }

    /// <summary>Tensors matching any of these stay float32.</summary>
    public IReadOnlyList<Regex> KeepFloat { get; init; } = [];

    /// <summary>Separate tokenizer (llama2.c tokenizer.bin) for inputs that lack one.</summary>
    public string? TokenizerPath { get; init; }

    /// <summary>
    /// True when the caller weights the rounding with importance (an importance matrix, or calibration statistics:
    /// the accuracy pipeline sets it). llama.cpp's mixes choose some types differently with one (has_imatrix); without
    /// one the plan refuses the types llama.cpp refuses. With one, checking that each such tensor gets its importance
    /// is the caller's part.
    /// </summary>
    public bool HasImportance { get; init; }
}
