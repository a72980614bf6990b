using System.Text.Json;
using System.Text.RegularExpressions;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// compressed-tensors checkpoints in the <c>pack-quantized</c> format (llm-compressor's W4A16 and other integer
/// weight schemes; <c>quant_method: "compressed-tensors"</c>), written from compressed-tensors'
/// <c>compressors/quantized_compressors/pack_quantized.py</c> (<c>pack_to_int32</c>) and
/// <c>quantization/lifecycle/forward.py</c> (<c>dequantize</c>):
/// <list type="bullet">
/// <item><c>weight_packed</c> int32 [out, ⌈in/(32/bits)⌉]: column 32/bits·c + j of a row in word c, bits
///   bits·j upwards, stored as q + 2^(bits−1) (q signed);</item>
/// <item><c>weight_scale</c> [out, groups] (one group for the channel strategy); <c>weight_zero_point</c> int32
///   [⌈out/(32/bits)⌉, groups] packed the same way along the output dimension (asymmetric schemes only);
///   <c>weight_shape</c> [2]; <c>weight_g_idx</c> [in] for activation ordering;</item>
/// <item>w[o, i] = (q − zp)·scale, which is s·(u − u_zp) for the stored unsigned u.</item>
/// </list>
/// Each config group's <c>targets</c> (a module class name, an exact or suffix module name, or <c>re:</c> a regex) pick
/// the modules it covers; <c>ignore</c> ones stay float.
/// </summary>
public sealed class CompressedTensorsScheme : CheckpointScheme
{
    public override IReadOnlyList<string> Methods => ["compressed-tensors"];

    /// <summary>One config group's weight arguments.</summary>
    private sealed record Args(string Name, IReadOnlyList<string> Targets, int Bits, bool Symmetric, string Strategy, int Group, string Format);

    public override CheckpointReader Open(JsonElement config, string source)
    {
        InvalidModelFileException Bad(string p) => new(source, $"quantization_config (compressed-tensors): {p}");
        string topFormat = ConfigValues.Str(config, "format") ?? "pack-quantized";
        if (!config.TryGetProperty("config_groups", out var groups) || groups.ValueKind != JsonValueKind.Object) throw Bad("no config_groups");
        var args = new List<Args>();
        foreach (var g in groups.EnumerateObject())
        {
            if (!g.Value.TryGetProperty("weights", out var w) || w.ValueKind != JsonValueKind.Object) continue;
            string format = ConfigValues.Str(g.Value, "format") ?? topFormat;
            string type = ConfigValues.Str(w, "type") ?? "int";
            if (format != "pack-quantized" || type != "int")
                throw Bad($"group '{g.Name}' is {format} {type} weights; this version runs pack-quantized integer weights");
            int bits = ConfigValues.Int(w, "num_bits") ?? throw Bad($"group '{g.Name}' has no num_bits");
            if (bits is < 1 or > 8) throw Bad($"group '{g.Name}' has num_bits {bits}");
            string strategy = ConfigValues.Str(w, "strategy") ?? "tensor";
            if (strategy is not ("group" or "channel" or "tensor")) throw Bad($"group '{g.Name}' has strategy '{strategy}' (group, channel and tensor are supported)");
            int group = strategy == "group" ? ConfigValues.Int(w, "group_size") ?? throw Bad($"group '{g.Name}' has no group_size") : 0;
            if (strategy == "group" && group <= 0) throw Bad($"group '{g.Name}' has group_size {group}");
            var targets = g.Value.TryGetProperty("targets", out var t) && t.ValueKind == JsonValueKind.Array
                ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : ["Linear"];
            args.Add(new Args(g.Name, targets, bits, ConfigValues.Bool(w, "symmetric") ?? true, strategy, group, format));
        }
        if (args.Count == 0) throw Bad("no config group quantizes weights");
        return new Reader(args);
    }

    private sealed class Reader(List<Args> groups) : CheckpointReader
    {
        public override string Description => "compressed-tensors " + string.Join(", ", groups.Select(a =>
            $"int{a.Bits} {(a.Strategy == "group" ? $"g{a.Group}" : a.Strategy == "channel" ? "per-channel" : "per-tensor")} {(a.Symmetric ? "sym" : "asym")}").Distinct());

        public override string? ModuleOf(string tensorName) =>
            tensorName.EndsWith(".weight_packed", StringComparison.Ordinal) ? tensorName[..^".weight_packed".Length] : null;

        /// <summary>The config group whose targets name the module (every packed module is a Linear), first first.</summary>
        private Args? For(string module) => groups.FirstOrDefault(a => a.Targets.Any(t =>
            t == "Linear" || t == module || module.EndsWith("." + t, StringComparison.Ordinal)
            || t.StartsWith("re:", StringComparison.Ordinal) && Regex.IsMatch(module, t[3..])));

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            var packed = m.Required("weight_packed");
            var args = For(prefix) ?? throw m.Bad(packed, "no config group's targets name this module");
            var shapeTensor = m.Required("weight_shape");
            var scale = m.Required("weight_scale");
            var zeroPoint = args.Symmetric ? null : m.Optional("weight_zero_point");
            var gIdx = m.Optional("weight_g_idx");
            int bits = args.Bits, perWord = 32 / bits, mask = (1 << bits) - 1, offset = 1 << (bits - 1);
            m.ExpectPackedMatrix(packed);
            if (shapeTensor.Type is not (TensorType.I32 or TensorType.I64))
                throw m.Bad(shapeTensor, $"type {TensorTypes.Traits(shapeTensor.Type).Name}, expected I32 or I64");
            long[] shape = ModuleTensors.Integers(shapeTensor);
            if (shape.Length != 2 || shape[0] <= 0 || shape[1] <= 0 || shape[0] > int.MaxValue / 2 || shape[1] > int.MaxValue / 2)
                throw m.Bad(shapeTensor, $"[{string.Join(", ", shape)}] is not a weight shape");
            int rows = (int)shape[0], cols = (int)shape[1];
            long words = (cols + perWord - 1) / perWord;
            m.Expect(packed, [rows, words]);
            int g = args.Strategy == "group" ? args.Group : cols;
            if (cols % g != 0) throw m.Bad(packed, $"{cols} input features are not a multiple of the group size {g}");
            int groupCount = cols / g;
            bool perTensor = args.Strategy == "tensor";
            if (perTensor && scale.ElementCount != 1) throw m.Bad(scale, $"shape [{string.Join(", ", scale.Shape)}], expected one scale");
            if (!perTensor) m.Expect(scale, [rows, groupCount]);
            var s = m.Floats(scale);
            var q = ModuleTensors.Int32s(packed);
            int[]? zp = null;
            if (!args.Symmetric)
            {
                if (zeroPoint is null)
                    throw new InvalidModelFileException(m.Source, $"quantized module '{prefix}' is asymmetric but has no tensor '{prefix}.weight_zero_point'");
                if (perTensor) throw m.Bad(zeroPoint, "asymmetric per-tensor weights are not supported");
                m.Expect(zeroPoint, [(rows + perWord - 1) / perWord, groupCount], TensorType.I32, TensorType.U32);
                zp = ModuleTensors.Int32s(zeroPoint);
            }
            int[]? order = GroupOrder.Of(gIdx, m, cols, g, groupCount);
            int Code(int o, int k)
            {
                int i = order is null ? k : order[k];
                return (q[(long)o * words + i / perWord] >>> (bits * (i % perWord))) & mask;
            }
            float Scale(int o, int grp) => perTensor ? s[0] : s[(long)o * groupCount + grp];
            int Zero(int o, int grp) => zp is null ? offset : (zp[(long)(o / perWord) * groupCount + grp] >>> (bits * (o % perWord))) & mask;
            return IntRepack.Build(m.Source, prefix + ".weight", rows, cols, bits, g, Code, Scale, Zero, order);
        }
    }
}
