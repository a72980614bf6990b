using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// gpt-oss MXFP4 tensors (the layout transformers' integrations/mxfp4.py <c>convert_moe_packed_tensors</c> reads:
/// <c>NAME_blocks</c> uint8 [out, in/32, 16], element 2j of a block in the low nibble of byte j, 2j + 1 in the high;
/// <c>NAME_scales</c> uint8 [out, in/32] E8M0), here under a linear layer's <c>weight</c>. The codes and exponents are
/// ggml's MXFP4 quantizer's, so a checkpoint holds the values of AnyBit's own <c>mxfp4</c> quantization.
/// </summary>
internal sealed class Mxfp4Writer : IModuleWriter
{
    private static readonly float[] Fp4Values = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    public JsonObject Config() => new() { ["quant_method"] = "mxfp4" };

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        var format = FormatRegistry.Parse("mxfp4");
        int blocksPerRow = cols / 32;
        var ggml = new byte[rows * blocksPerRow * 17];
        for (int r = 0; r < rows; r++)
            format.QuantizeRow(weight.AsSpan(r * cols, cols), ggml.AsSpan(r * blocksPerRow * 17, blocksPerRow * 17));
        var blocks = new byte[rows * blocksPerRow * 16];
        var scales = new byte[rows * blocksPerRow];
        var expected = new float[rows * cols];
        for (int k = 0; k < rows * blocksPerRow; k++)
        {
            var src = ggml.AsSpan(k * 17, 17);
            scales[k] = src[0];
            var codes = new int[32];
            for (int j = 0; j < 16; j++) { codes[j] = src[1 + j] & 15; codes[j + 16] = src[1 + j] >> 4; }
            for (int j = 0; j < 16; j++) blocks[k * 16 + j] = (byte)(codes[2 * j] | codes[2 * j + 1] << 4);
            for (int i = 0; i < 32; i++) expected[k * 32 + i] = (float)Math.ScaleB(Fp4Values[codes[i]], scales[k] - 127);
        }
        w.Add(prefix + ".weight_blocks", TensorType.U8, [rows, blocksPerRow, 16], blocks);
        w.Add(prefix + ".weight_scales", TensorType.U8, [rows, blocksPerRow], scales);
        return expected;
    }
}
