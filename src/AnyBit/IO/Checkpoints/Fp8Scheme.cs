using System.Text.Json;
using AnyBit.Formats;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// FP8 checkpoints: transformers' fine-grained FP8 (<c>quant_method: "fp8"</c>, DeepSeek-V3 style; read from
/// transformers' <c>integrations/finegrained_fp8.py</c>, <c>FP8Linear</c>, <c>Fp8Quantize</c>, <c>Fp8Dequantize</c>)
/// and FBGEMM's per-channel FP8 (<c>quant_method: "fbgemm_fp8"</c>, <c>integrations/fbgemm_fp8.py</c>):
/// <list type="bullet">
/// <item><c>weight</c> F8_E4M3 (OCP E4M3FN) [out, in];</item>
/// <item>fp8: <c>weight_scale_inv</c> float32 [⌈out/bm⌉, ⌈in/bn⌉] for <c>weight_block_size</c> [bm, bn] (default
///   [128, 128]), the scale of each bm×bn tile (the inverse of the quantizer's 448/absmax, despite its name);</item>
/// <item>fbgemm_fp8: <c>weight_scale</c> float32 [out, 1], one scale per row (a single value: one per tensor);
///   <c>input_scale_ub</c> (the activations' bound) is read past;</item>
/// <item>w[o, i] = float32(fp8)·scale, one float32 rounding.</item>
/// </list>
/// AnyBit has no integer kernel for 8-bit minifloats, and an E4M3 value times a float32 scale needs more than the
/// 11 significant bits of fp16 or the 8 of bf16, so each module becomes a float32 tensor in memory holding exactly
/// those products (four bytes a weight, run by the float path). NaN codes are refused.
/// </summary>
public sealed class Fp8Scheme : CheckpointScheme
{
    public override IReadOnlyList<string> Methods => ["fp8", "fbgemm_fp8"];

    public override CheckpointReader Open(JsonElement config, string source)
    {
        string method = ConfigValues.Str(config, "quant_method")!;
        if (method == "fbgemm_fp8") return new Reader(0, 0, perRow: true);
        string fmt = ConfigValues.Str(config, "fmt") ?? "e4m3";
        if (fmt != "e4m3") throw new InvalidModelFileException(source, $"FP8 fmt '{fmt}' is not supported (e4m3 is)");
        int bm = 128, bn = 128;
        if (config.TryGetProperty("weight_block_size", out var size) && size.ValueKind != JsonValueKind.Null)
        {
            if (size.ValueKind != JsonValueKind.Array || size.GetArrayLength() != 2
                || size.EnumerateArray().Any(d => d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v <= 0))
                throw new InvalidModelFileException(source, $"quantization_config (fp8) has weight_block_size {size.GetRawText()}, expected [rows, columns]");
            bm = size[0].GetInt32(); bn = size[1].GetInt32();
        }
        return new Reader(bm, bn, perRow: false);
    }

    private sealed class Reader(int bm, int bn, bool perRow) : CheckpointReader
    {
        private readonly string _scale = perRow ? "weight_scale" : "weight_scale_inv";

        public override string Description => perRow ? "FBGEMM FP8 e4m3 per-channel (float32 in memory)" : $"FP8 e4m3 {bm}x{bn} blocks (float32 in memory)";

        public override string? ModuleOf(string tensorName) =>
            tensorName.EndsWith("." + _scale, StringComparison.Ordinal) ? tensorName[..^(_scale.Length + 1)] : null;

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            var weight = m.Required("weight");
            var scaleTensor = m.Required(_scale);
            m.Optional("input_scale_ub");
            if (weight.Shape.Length != 2 || weight.Type != TensorType.F8_E4M3)
                throw m.Bad(weight, $"expected a 2-D F8_E4M3 tensor, found {TensorTypes.Traits(weight.Type).Name} [{string.Join(", ", weight.Shape)}]");
            if (weight.Shape[0] * weight.Shape[1] > int.MaxValue / 4) throw m.Bad(weight, "too large");
            int rows = (int)weight.Shape[0], cols = (int)weight.Shape[1];
            int tileRows, tileCols;
            if (perRow)
            {
                // One scale per row, or one for the whole tensor.
                bool perTensor = scaleTensor.ElementCount == 1;
                if (!perTensor) m.Expect(scaleTensor, [rows, 1], TensorType.F32, TensorType.BF16, TensorType.F16);
                (tileRows, tileCols) = (perTensor ? rows : 1, cols);
            }
            else
            {
                m.Expect(scaleTensor, [(rows + bm - 1) / bm, (cols + bn - 1) / bn], TensorType.F32, TensorType.BF16, TensorType.F16);
                (tileRows, tileCols) = (bm, bn);
            }
            var scale = m.Floats(scaleTensor);
            int scaleCols = (cols + tileCols - 1) / tileCols;
            var codes = weight.Bytes;
            var file = MappedFile.InMemory(m.Source, 4L * rows * cols);
            try
            {
                var decode = new float[256];
                for (int b = 0; b < 256; b++) decode[b] = Float8.E4M3FnToSingle((byte)b);
                for (int r = 0; r < rows; r++)
                {
                    var dst = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.Writable(4L * r * cols, 4 * cols));
                    var src = codes.Slice(r * cols, cols);
                    int scaleRow = r / tileRows * scaleCols;
                    for (int c = 0; c < cols; c++)
                    {
                        float v = decode[src[c]];
                        if (float.IsNaN(v)) throw m.Bad(weight, $"NaN code 0x{src[c]:x2} at [{r}, {c}]");
                        dst[c] = v * scale[scaleRow + c / tileCols];
                    }
                }
            }
            catch
            {
                file.Dispose();
                throw;
            }
            return new StoredTensor(prefix + ".weight", [rows, cols], TensorType.F32, file, 0, file.Length);
        }
    }
}
