using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// GPTQ checkpoints as GPTQModel writes them (gptqmodel/nn_modules/qlinear/__init__.py, <c>PackableQuantLinear.pack</c>):
/// qweight int32 [in/8·bits/4.., out] packing input rows from the low bits up, qzeros int32 [groups, out·bits/32]
/// packing outputs likewise, stored minus one in the v1 format (<c>checkpoint_format: "gptq"</c>), scales fp16
/// [groups, out], g_idx int32 [in]. With <paramref name="actOrder"/> the columns are grouped in a seeded random order
/// (desc_act: groups follow the Hessian's order, g_idx[perm[k]] = k / group).
/// </summary>
internal sealed class GptqWriter(int bits, int group, bool sym, bool v2 = false, bool actOrder = false) : IModuleWriter
{
    public JsonObject Config() => new()
    {
        ["quant_method"] = "gptq", ["bits"] = bits, ["group_size"] = group, ["desc_act"] = actOrder, ["sym"] = sym,
        ["checkpoint_format"] = v2 ? "gptq_v2" : "gptq",
    };

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        int g = group == -1 ? cols : group, groups = cols / g, perWord = 32 / bits;
        var format = new IntFormat(bits, g, sym);
        var perm = Enumerable.Range(0, cols).ToArray();
        if (actOrder) new Random(prefix.GetHashCode(StringComparison.Ordinal) & 0xffff).Shuffle(perm);
        var gIdx = new int[cols];
        for (int k = 0; k < cols; k++) gIdx[perm[k]] = k / g;

        var scales = new float[groups * rows];   // [groups, out]
        var zeros = new int[groups * rows];      // [groups, out]
        var q = new int[rows * cols];            // [out, in]
        var values = new float[g];
        var codes = new int[g];
        for (int o = 0; o < rows; o++)
            for (int grp = 0; grp < groups; grp++)
            {
                for (int k = 0; k < g; k++) values[k] = weight[(long)o * cols + perm[grp * g + k]];
                var (s, z) = CheckpointWriter.Fit(format, values, codes);
                scales[grp * rows + o] = s;
                zeros[grp * rows + o] = z;
                for (int k = 0; k < g; k++) q[o * cols + perm[grp * g + k]] = codes[k];
            }

        var qweight = new int[cols / perWord * rows];
        for (int i = 0; i < cols; i++)
            for (int o = 0; o < rows; o++)
                qweight[i / perWord * rows + o] |= q[o * cols + i] << (bits * (i % perWord));
        var qzeros = new int[groups * (rows / perWord)];
        int zeroOffset = v2 ? 0 : 1, mask = (1 << bits) - 1;
        for (int grp = 0; grp < groups; grp++)
            for (int o = 0; o < rows; o++)
                qzeros[grp * (rows / perWord) + o / perWord] |= ((zeros[grp * rows + o] - zeroOffset) & mask) << (bits * (o % perWord));

        w.Add(prefix + ".qweight", [cols / perWord, rows], qweight);
        w.Add(prefix + ".qzeros", [groups, rows / perWord], qzeros);
        w.Add(prefix + ".scales", TensorType.F16, [groups, rows], CheckpointWriter.Halves(scales));
        w.Add(prefix + ".g_idx", [cols], gIdx);

        // GPTQ's dequantization: scales[g_idx[i], o]·(q − (stored zero + 1)), where the stored zero wrapped to
        // bits bits (a zero of 0 is stored as all ones and reads back as 2^bits).
        var expected = new float[rows * cols];
        for (int o = 0; o < rows; o++)
            for (int i = 0; i < cols; i++)
            {
                int grp = gIdx[i];
                int z = ((zeros[grp * rows + o] - zeroOffset) & mask) + zeroOffset;
                expected[o * cols + i] = scales[grp * rows + o] * (q[o * cols + i] - z);
            }
        return expected;
    }
}
