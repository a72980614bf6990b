using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// Test checkpoints in the Hugging Face quantized formats, made from a float model folder: every layer's linear
/// weight goes through a format writer (<see cref="IModuleWriter"/>), everything else is copied as float32, and
/// config.json gains the writer's <c>quantization_config</c>. The codes are chosen by AnyBit's own round-to-nearest
/// (<see cref="IntFormat"/>'s fit) so that a checkpoint and AnyBit's quantization of the same spec hold the same
/// values; what is under test is each writer's layout, followed from the format's own packing code.
/// </summary>
internal static class CheckpointWriter
{
    public static readonly string[] LinearSuffixes =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    /// <summary>Writes <paramref name="output"/> from <paramref name="model"/>; returns each module's expected
    /// dequantized weight [out, in] (from the writer's own codes, scales and zeros).</summary>
    public static Dictionary<string, float[]> Write(string model, string output, IModuleWriter writer, Func<string, bool>? quantize = null)
    {
        Directory.CreateDirectory(output);
        var expected = new Dictionary<string, float[]>();
        using var store = SafetensorsCheckpoint.OpenFolder(model);
        var w = new SafetensorsWriter();
        foreach (var t in store.Tensors)
        {
            string prefix = t.Name.EndsWith(".weight", StringComparison.Ordinal) ? t.Name[..^".weight".Length] : "";
            bool linear = t.Shape.Length == 2 && LinearSuffixes.Any(s => prefix.EndsWith(s, StringComparison.Ordinal)) && (quantize?.Invoke(prefix) ?? true);
            var values = t.ToFloat32();
            if (!linear)
            {
                w.Add(t.Name, t.Shape, values);
                continue;
            }
            expected[prefix] = writer.Write(w, prefix, values, (int)t.Shape[0], (int)t.Shape[1]);
        }
        w.Write(Path.Combine(output, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!.AsObject();
        config["quantization_config"] = writer.Config();
        File.WriteAllText(Path.Combine(output, "config.json"), config.ToJsonString());
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
            if (File.Exists(Path.Combine(model, f))) File.Copy(Path.Combine(model, f), Path.Combine(output, f));
        return expected;
    }

    /// <summary>Fits (s, z) over <paramref name="values"/> as AnyBit's int{bits} asymmetric format does, and the codes.</summary>
    public static (float Scale, int Zero) Fit(IntFormat format, ReadOnlySpan<float> values, Span<int> codes)
    {
        var (s, z) = format.FitGroup(values);
        for (int i = 0; i < values.Length; i++) codes[i] = format.Code(values[i], s, z);
        return (s, z);
    }

    public static byte[] Bytes<T>(T[] values) where T : struct => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static byte[] Halves(float[] values) => Bytes(values.Select(v => (Half)v).ToArray());
}

/// <summary>Writes one linear layer in a checkpoint format.</summary>
internal interface IModuleWriter
{
    /// <summary>The config.json <c>quantization_config</c>.</summary>
    JsonObject Config();

    /// <summary>Adds the module's tensors for weight [rows = out, cols = in]; returns the dequantized weight the
    /// format's formula gives for what was written.</summary>
    float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols);
}
