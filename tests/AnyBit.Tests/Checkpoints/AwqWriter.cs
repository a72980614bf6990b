using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// AWQ GEMM checkpoints as AutoAWQ writes them (awq/modules/linear/gemm.py, <c>WQLinear_GEMM.from_linear</c>):
/// intweight transposed to [in, out], word c of a row packing outputs c·8 + order_map[i] into nibble i with
/// order_map = [0, 2, 4, 6, 1, 3, 5, 7]; zeros [in/group, out] packed the same way; scales fp16 [in/group, out].
/// </summary>
internal sealed class AwqWriter(int group) : IModuleWriter
{
    private static readonly int[] OrderMap = [0, 2, 4, 6, 1, 3, 5, 7];

    public JsonObject Config() => new()
    {
        ["quant_method"] = "awq", ["bits"] = 4, ["group_size"] = group, ["zero_point"] = true, ["version"] = "gemm",
    };

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        int groups = cols / group;
        var format = new IntFormat(4, group, symmetric: false);
        var intweight = new int[cols * rows];   // [in, out]
        var zeros = new int[groups * rows];     // [groups, out]
        var scales = new float[groups * rows];  // [groups, out]
        var codes = new int[group];
        var expected = new float[rows * cols];
        for (int o = 0; o < rows; o++)
            for (int g = 0; g < groups; g++)
            {
                var (s, z) = CheckpointWriter.Fit(format, weight.AsSpan(o * cols + g * group, group), codes);
                scales[g * rows + o] = s; zeros[g * rows + o] = z;
                for (int k = 0; k < group; k++)
                {
                    intweight[(g * group + k) * rows + o] = codes[k];
                    expected[o * cols + g * group + k] = s * (codes[k] - z);
                }
            }
        w.Add(prefix + ".qweight", [cols, rows / 8], Pack(intweight, cols, rows));
        w.Add(prefix + ".qzeros", [groups, rows / 8], Pack(zeros, groups, rows));
        w.Add(prefix + ".scales", TensorType.F16, [groups, rows], CheckpointWriter.Halves(scales));
        return expected;
    }

    private static int[] Pack(int[] values, int n, int columns)
    {
        var packed = new int[n * (columns / 8)];
        for (int r = 0; r < n; r++)
            for (int col = 0; col < columns / 8; col++)
                for (int i = 0; i < 8; i++)
                    packed[r * (columns / 8) + col] |= values[r * columns + col * 8 + OrderMap[i]] << (i * 4);
        return packed;
    }
}
