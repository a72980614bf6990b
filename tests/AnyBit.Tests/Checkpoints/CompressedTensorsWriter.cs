using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// compressed-tensors <c>pack-quantized</c> checkpoints as llm-compressor saves them
/// (compressed_tensors/compressors/quantized_compressors/pack_quantized.py: <c>compress_weight</c>,
/// <c>pack_to_int32</c>): signed codes q shifted by 2^(bits−1) and packed 32/bits to an int32 along the row, the
/// last word zero-padded; zero points (asymmetric) signed, shifted and packed along the output dimension; scales in
/// <paramref name="scaleType"/> [out, groups]; <c>weight_shape</c> [out, in].
/// </summary>
internal sealed class CompressedTensorsWriter(int bits, int group, bool symmetric, TensorType scaleType = TensorType.BF16) : IModuleWriter
{
    public JsonObject Config() => new()
    {
        ["quant_method"] = "compressed-tensors", ["format"] = "pack-quantized", ["quantization_status"] = "compressed",
        ["config_groups"] = new JsonObject
        {
            ["group_0"] = new JsonObject
            {
                ["targets"] = new JsonArray("Linear"),
                ["weights"] = new JsonObject
                {
                    ["num_bits"] = bits, ["type"] = "int", ["symmetric"] = symmetric,
                    ["strategy"] = group == -1 ? "channel" : "group", ["group_size"] = group == -1 ? null : group,
                },
            },
        },
        ["ignore"] = new JsonArray("lm_head"),
    };

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        int g = group == -1 ? cols : group, groups = cols / g, perWord = 32 / bits, offset = 1 << (bits - 1);
        var format = new IntFormat(bits, g, symmetric);
        var scales = new float[rows * groups];    // [out, groups]
        var zeros = new int[rows * groups];       // [out, groups], signed
        var q = new int[rows * cols];             // [out, in], signed
        var codes = new int[g];
        for (int o = 0; o < rows; o++)
            for (int grp = 0; grp < groups; grp++)
            {
                var (s, z) = CheckpointWriter.Fit(format, weight.AsSpan(o * cols + grp * g, g), codes);
                scales[o * groups + grp] = Round(s);
                zeros[o * groups + grp] = z - offset;
                for (int k = 0; k < g; k++) q[o * cols + grp * g + k] = codes[k] - offset;
            }
        int words = (cols + perWord - 1) / perWord;
        var packed = new int[rows * words];
        for (int o = 0; o < rows; o++)
            for (int i = 0; i < cols; i++)
                packed[o * words + i / perWord] |= (q[o * cols + i] + offset) << (bits * (i % perWord));
        w.Add(prefix + ".weight_packed", [rows, words], packed);
        w.Add(prefix + ".weight_scale", scaleType, [rows, groups], Encode(scales));
        w.Add(prefix + ".weight_shape", [2], [rows, cols]);
        if (!symmetric)
        {
            int zeroWords = (rows + perWord - 1) / perWord;
            var zp = new int[zeroWords * groups];
            for (int o = 0; o < rows; o++)
                for (int grp = 0; grp < groups; grp++)
                    zp[o / perWord * groups + grp] |= (zeros[o * groups + grp] + offset) << (bits * (o % perWord));
            w.Add(prefix + ".weight_zero_point", [zeroWords, groups], zp);
        }
        // compressed-tensors' dequantize: (x_q − zero_point)·scale.
        var expected = new float[rows * cols];
        for (int o = 0; o < rows; o++)
            for (int i = 0; i < cols; i++)
                expected[o * cols + i] = (q[o * cols + i] - (symmetric ? 0 : zeros[o * groups + i / g])) * scales[o * groups + i / g];
        return expected;
    }

    private float Round(float s) => scaleType switch
    {
        TensorType.BF16 => AnyBit.Formats.BFloat16.ToSingle(AnyBit.Formats.BFloat16.FromSingle(s)),
        TensorType.F16 => (float)(Half)s,
        _ => s,
    };

    private byte[] Encode(float[] v) => scaleType switch
    {
        TensorType.BF16 => CheckpointWriter.Bytes(v.Select(x => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16)).ToArray()),
        TensorType.F16 => CheckpointWriter.Halves(v),
        _ => CheckpointWriter.Bytes(v),
    };
}
