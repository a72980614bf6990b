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

    /// <summary>--cache-type-k, --cache-type-v and --cache-window, added to a command that runs the model.</summary>
    public sealed class KvCache
    {
        public Option<string?> Key { get; } = new("--cache-type-k", "-ctk")
        {
            Description = "KV cache type of keys: f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, int{2..8}:g{N}, any minifloat/MX/nvfp4 format; "
                + ":tokens groups along tokens per channel (KIVI), :rot rotates each head (e.g. q4_0:rot, int2:g32:asym:tokens)",
        };

        public Option<string?> Value { get; } = new("--cache-type-v", "-ctv") { Description = "KV cache type of values (forms as --cache-type-k)" };

        public Option<int> Window { get; } = new("--cache-window")
        {
            Description = "The newest N positions stay in float32 beside the quantized cache (KIVI's residual)",
            DefaultValueFactory = _ => 0,
        };

        public void AddTo(Command command)
        {
            command.Options.Add(Key);
            command.Options.Add(Value);
            command.Options.Add(Window);
        }

        /// <summary>The cache these options name; one-line errors for an unknown type or a negative window.</summary>
        public AnyBit.Inference.KvCacheOptions Parse(ParseResult parse) =>
            AnyBit.Inference.KvCacheOptions.Parse(parse.GetValue(Key), parse.GetValue(Value), parse.GetValue(Window));
    }

    /// <summary>"KV cache K q4_0, V q4_0: 2,304 bytes per position, 2.25 MiB per sequence of 1024 (0.00 MiB float32 window)".</summary>
    public static string DescribeKvCache(AnyBit.Inference.KvCacheOptions cache, ModelConfig config, int context)
    {
        var m = cache.Memory(config, context);
        return $"KV cache {cache}: {m.BytesPerPosition:N0} bytes per position, {m.BytesPerSequence / 1048576.0:F2} MiB per sequence of {context} positions"
            + (m.WindowBytes > 0 ? $" ({m.WindowBytes / 1048576.0:F2} MiB of it float32 rows)" : "");
    }

    /// <summary>
    /// A size for <paramref name="option"/>: "12MB", "900KB", "1.5GB" (decimal units, as file sizes are usually quoted),
    /// "512MiB", "8GiB" (binary) or plain bytes; one-line errors for anything else, zero, or more than a long holds.
    /// </summary>
    public static long ParseSize(string text, string option)
    {
        var m = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        if (!m.Success) throw new AnyBitException($"{option} '{text}' is not a size such as 8GB, 512MiB, 900KB or 123456");
        double value = double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        string unit = m.Groups[2].Value.ToUpperInvariant();
        double factor = unit switch
        {
            "KB" => 1e3, "MB" => 1e6, "GB" => 1e9, "TB" => 1e12,
            "KIB" => 1L << 10, "MIB" => 1L << 20, "GIB" => 1L << 30, "TIB" => 1L << 40,
            _ => 1,
        };
        double bytes = Math.Floor(value * factor);
        if (bytes < 1) throw new AnyBitException($"{option} '{text}' must be at least one byte");
        if (bytes >= long.MaxValue) throw new AnyBitException($"{option} '{text}' is too large");
        return (long)bytes;
    }

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
