using System.Text.Json.Nodes;
using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// Fine-grained FP8 checkpoints as transformers writes them (transformers/integrations/finegrained_fp8.py,
/// <c>Fp8Quantize.convert</c>): per tile of <paramref name="block"/>×<paramref name="block"/> weights, scale =
/// 448/absmax in float32 (1 for an all-zero tile), weight = float8_e4m3fn(clamp(x·scale, ±448)) rounded to nearest
/// even, <c>weight_scale_inv</c> F32 [out/block, in/block] = 1/scale. The dequantized weight is
/// float32(fp8)·weight_scale_inv. With <paramref name="perRow"/>, FBGEMM FP8 as transformers declares it
/// (transformers/integrations/fbgemm_fp8.py, <c>FbgemmFp8Linear</c>, <c>FbgemmFp8Quantize</c>): <c>weight_scale</c>
/// F32 [out, 1], one scale per row, the weight fp8·weight_scale (what <c>f8f8bf16_rowwise</c> multiplies by); the
/// codes here come from the same absmax/448 rule per row (fbgemm's <c>quantize_fp8_per_row</c> is a GPU kernel not
/// followed here; the layout and the dequantization are what is under test).
/// </summary>
internal sealed class Fp8Writer(int block = 128, bool perRow = false) : IModuleWriter
{
    public JsonObject Config() => perRow
        ? new() { ["quant_method"] = "fbgemm_fp8", ["activation_scale_ub"] = 1200.0 }
        : new() { ["quant_method"] = "fp8", ["activation_scheme"] = "dynamic", ["weight_block_size"] = new JsonArray(block, block) };

    private static readonly float[] Values = Enumerable.Range(0, 256).Select(b => Float8.E4M3FnToSingle((byte)b)).ToArray();

    /// <summary>The E4M3FN code nearest <paramref name="x"/> (|x| ≤ 448), ties to the even code: codes 0..126 are the
    /// finite magnitudes in ascending order, the sign is bit 7.</summary>
    public static byte Encode(float x)
    {
        float a = MathF.Abs(x);
        int lo = 0, hi = 126;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (Values[mid] <= a) lo = mid; else hi = mid - 1;
        }
        int best = lo;
        if (lo < 126)
        {
            float below = a - Values[lo], above = Values[lo + 1] - a;
            if (above < below || (above == below && (lo & 1) == 1)) best = lo + 1;
        }
        return (byte)(best | (x < 0 || (x == 0 && float.IsNegative(x)) ? 0x80 : 0));
    }

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        int bm = perRow ? 1 : block, bn = perRow ? cols : block;
        int tr = rows / bm, tc = cols / bn;
        var inv = new float[tr * tc];
        var codes = new byte[rows * cols];
        var expected = new float[rows * cols];
        for (int bi = 0; bi < tr; bi++)
            for (int bj = 0; bj < tc; bj++)
            {
                float amax = 0;
                for (int r = bi * bm; r < (bi + 1) * bm; r++)
                    for (int c = bj * bn; c < (bj + 1) * bn; c++) amax = MathF.Max(amax, MathF.Abs(weight[r * cols + c]));
                float scale = amax > 0 ? 448f / amax : 1f;
                inv[bi * tc + bj] = 1f / scale;
                for (int r = bi * bm; r < (bi + 1) * bm; r++)
                    for (int c = bj * bn; c < (bj + 1) * bn; c++)
                    {
                        byte q = Encode(Math.Clamp(weight[r * cols + c] * scale, -448f, 448f));
                        codes[r * cols + c] = q;
                        expected[r * cols + c] = Values[q] * inv[bi * tc + bj];
                    }
            }
        w.Add(prefix + ".weight", TensorType.F8_E4M3, [rows, cols], codes);
        w.Add(prefix + (perRow ? ".weight_scale" : ".weight_scale_inv"), [tr, tc], inv);
        return expected;
    }
}
