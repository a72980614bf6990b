using System.Text.Json;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// GPTQ checkpoints (AutoGPTQ, GPTQModel; <c>quant_method: "gptq"</c>), written from GPTQModel's
/// <c>nn_modules/qlinear/__init__.py</c> (<c>pack</c>) and its torch dequantization:
/// <list type="bullet">
/// <item><c>qweight</c> int32 [in·bits/32, out]: input row i of output column o in word i/(32/bits), bits
///   bits·(i mod 32/bits) upwards;</item>
/// <item><c>qzeros</c> int32 [groups, out·bits/32]: the same packing along the output dimension;</item>
/// <item><c>scales</c> [groups, out] (fp16, or bf16/f32); <c>g_idx</c> int32 [in]: each input column's group (act-order
///   checkpoints permute them);</item>
/// <item>w[o, i] = scales[g, o]·(q − z), g = g_idx[i], where z is the stored zero plus one in the original format
///   (<c>checkpoint_format: "gptq"</c>, which subtracts one when packing) and the stored zero in <c>gptq_v2</c>.</item>
/// </list>
/// Act-order groups are made contiguous at load by permuting the input columns (<see cref="StoredTensor.InputOrder"/>).
/// </summary>
public sealed class GptqScheme : CheckpointScheme
{
    public override IReadOnlyList<string> Methods => ["gptq"];

    public override CheckpointReader Open(JsonElement config, string source)
    {
        int bits = ConfigValues.Int(config, "bits") ?? throw new InvalidModelFileException(source, "quantization_config (gptq) has no 'bits'");
        if (bits is not (2 or 4 or 8))
            throw new InvalidModelFileException(source, $"GPTQ with {bits}-bit weights is not supported (2, 4 and 8 are; 3-bit GPTQ packs across words)");
        int group = ConfigValues.Int(config, "group_size") ?? 128;
        if (group == 0 || group < -1) throw new InvalidModelFileException(source, $"quantization_config (gptq) has group_size {group}");
        string format = ConfigValues.Str(config, "checkpoint_format") ?? "gptq";
        if (format is not ("gptq" or "gptq_v2"))
            throw new InvalidModelFileException(source, $"GPTQ checkpoint_format '{format}' is not supported (gptq and gptq_v2 are; marlin and others repack for one GPU kernel)");
        bool actOrder = ConfigValues.Bool(config, "desc_act") ?? false;
        bool sym = ConfigValues.Bool(config, "sym") ?? true;
        return new Reader(bits, group, v2: format == "gptq_v2", actOrder, sym);
    }

    private sealed class Reader(int bits, int group, bool v2, bool actOrder, bool sym) : CheckpointReader
    {
        public override string Description =>
            $"GPTQ int{bits} {(group == -1 ? "per-channel" : $"g{group}")} {(sym ? "sym" : "asym")} ({(v2 ? "v2" : "v1")}{(actOrder ? ", act-order" : "")})";

        public override string? ModuleOf(string tensorName) =>
            tensorName.EndsWith(".qweight", StringComparison.Ordinal) ? tensorName[..^".qweight".Length] : null;

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            int perWord = 32 / bits, mask = (1 << bits) - 1;
            var qweight = m.Required("qweight");
            var scales = m.Required("scales");
            var qzeros = m.Required("qzeros");
            var gIdx = m.Optional("g_idx");
            m.ExpectPackedMatrix(qweight);
            long inputs = qweight.Shape[0] * perWord, outputs = qweight.Shape[1];
            if (outputs % perWord != 0) throw m.Bad(qweight, $"{outputs} output features are not a multiple of {perWord}");
            if (inputs > int.MaxValue / 2 || outputs > int.MaxValue / 2) throw m.Bad(qweight, "too large");
            int rows = (int)outputs, cols = (int)inputs;
            int g = group == -1 ? cols : group;
            if (cols % g != 0) throw m.Bad(qweight, $"{cols} input features are not a multiple of the group size {g}");
            int groups = cols / g;
            m.Expect(scales, [groups, rows], TensorType.F16, TensorType.BF16, TensorType.F32);
            m.Expect(qzeros, [groups, rows / perWord], TensorType.I32, TensorType.U32);
            var q = ModuleTensors.Int32s(qweight);
            var s = m.Floats(scales);
            var z = ModuleTensors.Int32s(qzeros);
            int zeroOffset = v2 ? 0 : 1;

            int[]? order = GroupOrder.Of(gIdx, m, cols, g, groups);
            int Code(int o, int k)
            {
                int i = order is null ? k : order[k];
                return (q[(long)(i / perWord) * rows + o] >>> (bits * (i % perWord))) & mask;
            }
            float Scale(int o, int grp) => s[(long)grp * rows + o];
            int Zero(int o, int grp) => ((z[(long)grp * (rows / perWord) + o / perWord] >>> (bits * (o % perWord))) & mask) + zeroOffset;
            return IntRepack.Build(m.Source, prefix + ".weight", rows, cols, bits, g, Code, Scale, Zero, order);
        }
    }
}
