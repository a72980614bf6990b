using System.Text.Json;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// AWQ checkpoints in the GEMM layout (AutoAWQ, <c>quant_method: "awq"</c>, <c>version: "gemm"</c>), written from
/// AutoAWQ's <c>awq/modules/linear/gemm.py</c> (<c>WQLinear_GEMM.from_linear</c>) and <c>awq/utils/packing_utils.py</c>
/// (<c>dequantize_gemm</c>):
/// <list type="bullet">
/// <item><c>qweight</c> int32 [in, out/8]: word c of input row i holds outputs 8c + [0, 2, 4, 6, 1, 3, 5, 7] in its
///   nibbles from the lowest up;</item>
/// <item><c>qzeros</c> int32 [in/group, out/8], packed the same way; <c>scales</c> fp16 [in/group, out];</item>
/// <item>w[o, i] = scales[i/group, o]·(q − z).</item>
/// </list>
/// </summary>
public sealed class AwqScheme : CheckpointScheme
{
    /// <summary>The output index (within 8) of each nibble of a word, lowest first.</summary>
    private static readonly int[] Order = [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>Which nibble of a word holds output 8c + j.</summary>
    private static readonly int[] Nibble = Enumerable.Range(0, 8).Select(j => Array.IndexOf(Order, j)).ToArray();

    public override IReadOnlyList<string> Methods => ["awq"];

    public override CheckpointReader Open(JsonElement config, string source)
    {
        int bits = ConfigValues.Int(config, "bits") ?? ConfigValues.Int(config, "w_bit") ?? 4;
        if (bits != 4) throw new InvalidModelFileException(source, $"AWQ with {bits}-bit weights is not supported (4 is)");
        int group = ConfigValues.Int(config, "group_size") ?? ConfigValues.Int(config, "q_group_size") ?? 128;
        if (group <= 0) throw new InvalidModelFileException(source, $"quantization_config (awq) has group_size {group}");
        string version = (ConfigValues.Str(config, "version") ?? "gemm").ToLowerInvariant();
        if (version != "gemm")
            throw new InvalidModelFileException(source, $"AWQ version '{version}' is not supported (gemm is; gemv and the GPU-kernel layouts pack differently)");
        if (ConfigValues.Bool(config, "zero_point") == false)
            throw new InvalidModelFileException(source, "AWQ without zero points is not supported");
        return new Reader(group);
    }

    private sealed class Reader(int group) : CheckpointReader
    {
        public override string Description => $"AWQ int4 g{group} asym (GEMM)";

        public override string? ModuleOf(string tensorName) =>
            tensorName.EndsWith(".qweight", StringComparison.Ordinal) ? tensorName[..^".qweight".Length] : null;

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            var qweight = m.Required("qweight");
            var qzeros = m.Required("qzeros");
            var scales = m.Required("scales");
            m.ExpectPackedMatrix(qweight);
            long inputs = qweight.Shape[0], outputs = qweight.Shape[1] * 8;
            if (inputs > int.MaxValue / 2 || outputs > int.MaxValue / 2) throw m.Bad(qweight, "too large");
            int rows = (int)outputs, cols = (int)inputs, words = rows / 8;
            if (cols % group != 0) throw m.Bad(qweight, $"{cols} input features are not a multiple of the group size {group}");
            int groups = cols / group;
            m.Expect(qzeros, [groups, words], TensorType.I32, TensorType.U32);
            m.Expect(scales, [groups, rows], TensorType.F16, TensorType.BF16, TensorType.F32);
            var q = ModuleTensors.Int32s(qweight);
            var z = ModuleTensors.Int32s(qzeros);
            var s = m.Floats(scales);
            int Unpack(int[] words_, long row, int o) => (words_[row * words + o / 8] >>> (4 * Nibble[o % 8])) & 15;
            return IntRepack.Build(m.Source, prefix + ".weight", rows, cols, 4, group,
                (o, i) => Unpack(q, i, o), (o, g) => s[(long)g * rows + o], (o, g) => Unpack(z, g, o), inputOrder: null);
        }
    }
}
