namespace AnyBit.Models;

/// <summary>The registry of architecture descriptors: the one place that finds a family by its file names.</summary>
public sealed partial class Architecture
{
    private static Architecture[]? s_all;

    /// <summary>Every supported family, in the order error messages list them.</summary>
    public static IReadOnlyList<Architecture> All => s_all ??= [Llama, Mistral, Qwen2, Qwen3, Gemma2, Gemma3, Phi3, BitNet, Mixtral, Qwen2Moe, Qwen3Moe, Olmoe, GptOss];

    /// <summary>The family a Hugging Face <c>model_type</c> names; null when none does.</summary>
    public static Architecture? FromHfModelType(string modelType) => All.FirstOrDefault(a => a.HfModelTypes.Contains(modelType));

    /// <summary>The family a GGUF <c>general.architecture</c> names (its own name or bitnet.cpp's); null when none does.</summary>
    public static Architecture? FromGgufName(string name) =>
        All.FirstOrDefault(a => a.GgufName == name) ?? All.FirstOrDefault(a => a.BitnetCppGgufNames.Contains(name));

    /// <summary>True when <paramref name="name"/> is a <c>general.architecture</c> bitnet.cpp's fork writes, so that the
    /// file's type ids 36–39 are the fork's.</summary>
    public static bool IsBitnetCppName(string? name) => name is not null && All.Any(a => a.BitnetCppGgufNames.Contains(name));

    /// <summary>The supported Hugging Face <c>model_type</c> values, for error messages.</summary>
    public static string SupportedHfModelTypes => string.Join(", ", All.SelectMany(a => a.HfModelTypes));

    /// <summary>The supported GGUF <c>general.architecture</c> values, for error messages.</summary>
    public static string SupportedGgufNames => string.Join(", ", All.SelectMany(a => a.BitnetCppGgufNames.Prepend(a.GgufName)).Distinct());
}
