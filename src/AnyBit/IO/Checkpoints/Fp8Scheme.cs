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
/// Each module becomes <c>e4m3fn:g32:f32</c> blocks (each block of 32 codes as stored, with its tile's or row's
/// scale): the same products, held in 9 bits a weight and multiplied by the float tiles as stored
/// (<see cref="Kernels.NarrowMatrix"/>). Where the tiles do not split into blocks of 32 (a row length or tile width
/// that is not a multiple of 32), a float32 tensor of the products instead. NaN codes are refused.
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

        public override string Description => perRow ? "FBGEMM FP8 e4m3 per-channel" : $"FP8 e4m3 {bm}x{bn} blocks";

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
            for (int i = 0; i < codes.Length; i++)
                if ((codes[i] & 0x7F) == 0x7F) throw m.Bad(weight, $"NaN code 0x{codes[i]:x2} at [{i / cols}, {i % cols}]");
            if (cols % 32 == 0 && tileCols % 32 == 0) return Blocks(prefix, m.Source, codes, scale, rows, cols, tileRows, tileCols, scaleCols);
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

        /// <summary>The codes in <c>e4m3fn:g32:f32</c> blocks, each with the scale of the tile it lies in.</summary>
        private static StoredTensor Blocks(string prefix, string source, ReadOnlySpan<byte> codes, float[] scale, int rows, int cols, int tileRows, int tileCols, int scaleCols)
        {
            var format = new Quantization.MinifloatFormat(Minifloat.Parse("e4m3fn"), 32, perChannel: false, floatScale: true);
            int blocks = cols / 32, blockBytes = format.BytesPerBlock;
            var file = MappedFile.InMemory(source, (long)rows * blocks * blockBytes);
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < blocks; b++)
                {
                    var dst = file.Writable(((long)r * blocks + b) * blockBytes, blockBytes);
                    System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(dst, scale[r / tileRows * scaleCols + b * 32 / tileCols]);
                    codes.Slice(r * cols + b * 32, 32).CopyTo(dst[4..]);
                }
            return new StoredTensor(prefix + ".weight", [rows, cols], (TensorType)Quantization.FormatRegistry.FirstCustomTypeId, file, 0, file.Length, format);
        }
    }
}
