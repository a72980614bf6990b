namespace AnyBit.IO;

/// <summary>
/// What a ggml type id in a GGUF file means: the one place that decides. Two stretches of ids are not mainline ggml's
/// current types:
/// <list type="bullet">
/// <item>31–33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36–38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8): repacked CPU layouts
/// llama.cpp wrote into files for a few weeks and then removed (ggml.h keeps them as comments; repacking moved to load
/// time). A file holding one is refused with what to do.</item>
/// <item>bitnet.cpp's llama.cpp fork numbers its own types over 36–39: I2_S 36, I8_S 37 (its int8 activations), TL1 38
/// and TL2 39. A file whose <c>general.architecture</c> is one the fork writes for BitNet ("bitnet-b1.58",
/// "bitnet-25", "bitnet": <see cref="Models.Architecture.BitnetCppGgufNames"/>) is read with the fork's meaning: 36 is
/// I2_S, 37 and 38 are refused, and 39 is TL2 where the fork's converter wrote the tensor's scale beside it
/// (<c>{name}_scale</c>); otherwise 39 is mainline's MXFP4, which a llama.cpp "bitnet" file may hold.</item>
/// </list>
/// llama.cpp never wrote the repacked types into BitNet files in practice (they were ARM CPU layouts of Q4_0 and IQ4_NL
/// models), so the architecture settles id 36.
/// </summary>
internal static class GgufTypeIds
{
    private const string Requantize = "re-quantize from the original weights with llama-quantize or anybit quantize: llama.cpp removed this repacked type";

    private static readonly Dictionary<uint, string> Retired = new()
    {
        [31] = "Q4_0_4_4", [32] = "Q4_0_4_8", [33] = "Q4_0_8_8", [36] = "IQ4_NL_4_4", [37] = "IQ4_NL_4_8", [38] = "IQ4_NL_8_8",
    };

    /// <summary>
    /// The type of <paramref name="tensor"/>, stored under ggml type id <paramref name="id"/> in a file whose
    /// <c>general.architecture</c> is <paramref name="architecture"/>; null when the file cannot be read, with the
    /// one-line <paramref name="problem"/>. <paramref name="hasTensor"/> tells whether the file holds a tensor of that name.
    /// </summary>
    public static TensorType? Resolve(uint id, string tensor, string? architecture, Func<string, bool> hasTensor, out string? problem)
    {
        problem = null;
        if (Models.Architecture.IsBitnetCppName(architecture))
        {
            string lut = $"a lookup-table layout generated for one model's bitnet.cpp kernels, which AnyBit does not read: convert the model to I2_S "
                + "(bitnet.cpp's setup_env.py --quant-type i2_s, or anybit quantize --format i2_s from the original weights)";
            switch (id)
            {
                case 36: return TensorType.I2_S;
                case 37:
                    problem = $"tensor '{tensor}' has type id 37, bitnet.cpp's I8_S (its int8 activations, never a weight) or llama.cpp's retired IQ4_NL_4_8: "
                        + "re-quantize from the original weights with anybit quantize or bitnet.cpp's converter";
                    return null;
                case 38:
                    problem = $"tensor '{tensor}' has type id 38, bitnet.cpp's TL1, {lut}";
                    return null;
                case 39 when hasTensor(tensor + "_scale"):
                    problem = $"tensor '{tensor}' has type id 39 with a '{tensor}_scale' beside it: bitnet.cpp's TL2, {lut}";
                    return null;
            }
        }
        if (Retired.TryGetValue(id, out string? name))
        {
            string i2s = id == 36 ? $"; bitnet.cpp's I2_S uses the same id, read in its BitNet files only, and this file's architecture is '{architecture ?? "(none)"}'" : "";
            problem = $"tensor '{tensor}' has type {name} (ggml id {id}){i2s}: {Requantize}";
            return null;
        }
        var type = (TensorType)id;
        if (id >= 1000 || !TensorTypes.IsKnown(type))
        {
            problem = $"tensor '{tensor}' has unknown ggml type id {id}";
            return null;
        }
        return type;
    }
}
