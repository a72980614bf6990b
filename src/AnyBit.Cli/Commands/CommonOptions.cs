using System.CommandLine;
using System.Text.Json;
using AnyBit.Models;

namespace AnyBit.Cli.Commands;

/// <summary>Options shared by several commands.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m")
    {
        Description = "Model: a Hugging Face folder, a .gguf file, or a llama2.c .bin",
        Required = true,
    };

    public static Option<string?> Tokenizer() => new("--tokenizer")
    {
        Description = "Tokenizer file for models without one (llama2.c tokenizer.bin) or to override the model's",
    };

    public static Option<bool> Json() => new("--json") { Description = "Print machine-readable JSON" };

    public static Option<bool> FloatReference() => new("--float-reference")
    {
        Description = "BitNet: run with float activations instead of the as-trained int8 activations",
    };

    public static Option<string> Kernels() => new("--kernels")
    {
        Description = "Kernels for quantized weights: fast (SIMD integer kernels), reference (their scalar definition, slow) or f32 (dequantize at load, float activations)",
        DefaultValueFactory = _ => "fast",
    };

    /// <summary>The <see cref="AnyBit.Kernels.Quantized.KernelMode"/> named by --kernels.</summary>
    public static AnyBit.Kernels.Quantized.KernelMode ParseKernels(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "fast" => AnyBit.Kernels.Quantized.KernelMode.Fast,
        "reference" or "ref" => AnyBit.Kernels.Quantized.KernelMode.Reference,
        "f32" or "float32" => AnyBit.Kernels.Quantized.KernelMode.Float32,
        _ => throw new AnyBitException($"--kernels: unknown value '{text}' (use fast, reference or f32)"),
    };

    public static readonly JsonSerializerOptions JsonOutput = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
        // Text fields are for people and scripts alike: keep quotes and non-ASCII readable (still valid JSON).
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static void WriteJson(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOutput));

    /// <summary>The model's tokenizer, or a clear error naming what to pass instead.</summary>
    public static AnyBit.Text.ITokenizer RequireTokenizer(Transformer model) =>
        model.Tokenizer ?? throw new AnyBitException($"{model.Source}: the model has no tokenizer; pass --tokenizer FILE (or token ids with --prompt-ids)");

    /// <summary>Parses "1,2,3" into ids, each checked against the vocabulary.</summary>
    public static int[] ParseIds(string text, int vocab)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new AnyBitException("--prompt-ids is empty: give comma-separated token ids, e.g. 1,2,3");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], out ids[i])) throw new AnyBitException($"--prompt-ids: '{parts[i]}' is not an integer");
            if (ids[i] < 0 || ids[i] >= vocab) throw new AnyBitException($"--prompt-ids: token id {ids[i]} is outside the vocabulary (0..{vocab - 1})");
        }
        return ids;
    }
}
