using System.Text;
using System.Text.Json.Nodes;
using AnyBit.IO;
using AnyBit.IO.Checkpoints;
using AnyBit.Quantization;

namespace AnyBit.Tests.Checkpoints;

/// <summary>
/// bitsandbytes 4-bit checkpoints as transformers saves them (bitsandbytes/nn/modules.py,
/// <c>Linear4bit._save_to_state_dict</c>; bitsandbytes/functional.py, <c>quantize_4bit</c>, <c>QuantState.as_dict(packed=True)</c>;
/// bitsandbytes/utils.py, <c>pack_dict_to_tensor</c>): <c>weight</c> U8 [n/2, 1] holding the flattened [out, in]
/// codes two per byte, first in the high nibble; <c>weight.absmax</c> F32 [n/blocksize]; <c>weight.quant_map</c> F32[16];
/// the non-tensor state as JSON bytes in <c>weight.quant_state.bitsandbytes__{nf4,fp4}</c>. With double quantization
/// (<c>compress_statistics</c>) absmax is quantized as quantize_4bit does it: offset = mean(absmax), then
/// <c>quantize_blockwise(absmax − offset, blocksize=256)</c> with the 8-bit dynamic map (<c>create_dynamic_map</c>),
/// following the default backend (bitsandbytes/backends/default/ops.py): per-block absmax, x·(1/absmax) clamped to
/// ±1, <c>torch.bucketize</c> on the code midpoints. The 4-bit codes and absmax are chosen by AnyBit's own nf4/fp4
/// quantizer (<see cref="LookupTableFormat.QuantizeRow"/>: the nearest code of x/absmax, where bitsandbytes multiplies
/// by 1/absmax), so that the checkpoint holds what AnyBit's <c>nf4:gN</c> holds.
/// </summary>
internal sealed class BitsAndBytes4Writer(string kind, int blocksize, bool doubleQuant) : IModuleWriter
{
    public JsonObject Config() => new()
    {
        ["quant_method"] = "bitsandbytes", ["load_in_4bit"] = true, ["load_in_8bit"] = false,
        ["bnb_4bit_quant_type"] = kind, ["bnb_4bit_use_double_quant"] = doubleQuant,
        ["bnb_4bit_compute_dtype"] = "bfloat16", ["bnb_4bit_quant_storage"] = "uint8",
    };

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        var format = new LookupTableFormat(kind, blocksize);
        var table = kind == "nf4" ? LookupTableFormat.Nf4 : LookupTableFormat.Fp4;
        int perRow = cols / blocksize, blocks = rows * perRow;
        var row = new byte[perRow * format.BytesPerBlock];
        var packed = new byte[rows * cols / 2];
        var absmax = new float[blocks];
        for (int r = 0; r < rows; r++)
        {
            format.QuantizeRow(weight.AsSpan(r * cols, cols), row);
            for (int k = 0; k < perRow; k++)
            {
                var block = row.AsSpan(k * format.BytesPerBlock, format.BytesPerBlock);
                absmax[r * perRow + k] = BitConverter.ToSingle(block[..4]);
                block[4..].CopyTo(packed.AsSpan((r * cols + k * blocksize) / 2));
            }
        }

        var state = new JsonObject
        {
            ["quant_type"] = kind, ["blocksize"] = blocksize, ["dtype"] = "bfloat16", ["shape"] = new JsonArray(rows, cols),
        };
        float[] scale = absmax;
        w.Add(prefix + ".weight", TensorType.U8, [rows * cols / 2, 1], packed);
        if (doubleQuant)
        {
            const int nested = 256;
            float offset = (float)absmax.Average(v => (double)v);
            var map = DynamicMap();
            var (codes, nestedAbsmax) = QuantizeBlockwise(absmax.Select(v => v - offset).ToArray(), map, nested);
            w.Add(prefix + ".weight.absmax", TensorType.U8, [blocks], codes);
            w.Add(prefix + ".weight.quant_map", [16], table);
            w.Add(prefix + ".weight.nested_absmax", [nestedAbsmax.Length], nestedAbsmax);
            w.Add(prefix + ".weight.nested_quant_map", [256], map);
            state["nested_blocksize"] = nested;
            state["nested_dtype"] = "float32";
            state["nested_offset"] = (double)offset;
            // dequantize_blockwise (a float32 product), then absmax += offset (a float32 sum).
            scale = new float[blocks];
            for (int b = 0; b < blocks; b++)
            {
                float product = map[codes[b]] * nestedAbsmax[b / nested];
                scale[b] = product + offset;
            }
        }
        else
        {
            w.Add(prefix + ".weight.absmax", [blocks], absmax);
            w.Add(prefix + ".weight.quant_map", [16], table);
        }
        byte[] json = Encoding.UTF8.GetBytes(state.ToJsonString());
        w.Add(prefix + ".weight.quant_state.bitsandbytes__" + kind, TensorType.U8, [json.Length], json);

        // dequantize_4bit: code value × the block's absmax, in float32.
        var expected = new float[rows * cols];
        for (int i = 0; i < expected.Length; i++)
        {
            int q = (packed[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 15;
            expected[i] = table[q] * scale[i / blocksize];
        }
        return expected;
    }

    /// <summary>bitsandbytes' <c>create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)</c>, in float32
    /// with torch.linspace's two-sided formula.</summary>
    public static float[] DynamicMap()
    {
        var data = new List<float>();
        for (int i = 0; i < 7; i++)
        {
            int items = (1 << i) + 1;
            var boundaries = Linspace(0.1f, 1f, items);
            float power = (float)Math.Pow(10, -6 + i);
            for (int k = 0; k < items - 1; k++)
            {
                float mean = (boundaries[k] + boundaries[k + 1]) / 2f;
                data.Add(power * mean);
                data.Add(-power * mean);
            }
        }
        data.Add(0);
        data.Add(1);
        if (data.Count != 256) throw new InvalidOperationException($"dynamic map of {data.Count} values");
        data.Sort();
        return data.ToArray();
    }

    private static float[] Linspace(float start, float end, int steps)
    {
        var r = new float[steps];
        if (steps == 1) { r[0] = start; return r; }
        float step = (end - start) / (steps - 1);
        int half = steps / 2;
        for (int i = 0; i < steps; i++) r[i] = i < half ? start + step * i : end - step * (steps - i - 1);
        return r;
    }

    /// <summary>quantize_blockwise (default backend): per-block absmax, x·(1/absmax) clamped to ±1, bucketize on the
    /// midpoints of the sorted code (a value on a midpoint takes the lower code).</summary>
    public static (byte[] Codes, float[] Absmax) QuantizeBlockwise(float[] x, float[] code, int blocksize)
    {
        var bounds = new float[code.Length - 1];
        for (int i = 0; i < bounds.Length; i++) bounds[i] = (code[i] + code[i + 1]) / 2f;
        int blocks = (x.Length + blocksize - 1) / blocksize;
        var absmax = new float[blocks];
        var q = new byte[x.Length];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * blocksize, end = Math.Min(x.Length, start + blocksize);
            float amax = 0;
            for (int i = start; i < end; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
            absmax[b] = amax;
            float inv = 1f / MathF.Max(amax, 1e-38f);
            for (int i = start; i < end; i++)
            {
                float s = Math.Clamp(x[i] * inv, -1f, 1f);
                int k = 0;
                while (k < bounds.Length && s > bounds[k]) k++;
                q[i] = (byte)k;
            }
        }
        return (q, absmax);
    }
}

/// <summary>
/// bitsandbytes LLM.int8 checkpoints as transformers saves them (bitsandbytes/nn/modules.py,
/// <c>Linear8bitLt._save_to_state_dict</c>, <c>Int8Params</c>; bitsandbytes/backends/default/ops.py,
/// <c>int8_vectorwise_quant</c>): <c>weight</c> I8 [out, in] = round(A·(127/SCB)) half to even, <c>SCB</c> F32 [out]
/// each row's absmax, <c>weight_format</c> U8 scalar 0 (row-major).
/// </summary>
internal sealed class BitsAndBytes8Writer : IModuleWriter
{
    public JsonObject Config() => new()
    {
        ["quant_method"] = "bitsandbytes", ["load_in_4bit"] = false, ["load_in_8bit"] = true, ["llm_int8_threshold"] = 6.0,
    };

    /// <summary>bitsandbytes' <c>int8_vectorwise_dequant</c>: (q·SCB)·float32(1/127), two float32 roundings.</summary>
    public static float Bnb(sbyte q, float scb) => q * scb * BitsAndBytesScheme.InverseOf127;

    /// <summary>The stored rows' SCB and codes, by module, for the ulp comparison with <see cref="Bnb"/>.</summary>
    public Dictionary<string, (float[] Scb, sbyte[] Q)> Stored { get; } = new();

    public float[] Write(SafetensorsWriter w, string prefix, float[] weight, int rows, int cols)
    {
        var scb = new float[rows];
        var q = new sbyte[rows * cols];
        var expected = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            float amax = 0;
            for (int c = 0; c < cols; c++) amax = MathF.Max(amax, MathF.Abs(weight[r * cols + c]));
            scb[r] = amax;
            float factor = 127f / amax;
            // The scheme's formula: s = float32(SCB·c), value s·q.
            float s = amax * BitsAndBytesScheme.InverseOf127;
            for (int c = 0; c < cols; c++)
            {
                q[r * cols + c] = amax == 0 ? (sbyte)0 : (sbyte)MathF.Round(weight[r * cols + c] * factor);
                expected[r * cols + c] = s * q[r * cols + c];
            }
        }
        w.Add(prefix + ".weight", TensorType.I8, [rows, cols], CheckpointWriter.Bytes(q));
        w.Add(prefix + ".SCB", [rows], scb);
        w.Add(prefix + ".weight_format", TensorType.U8, [], [0]);
        Stored[prefix] = (scb, q);
        return expected;
    }
}
