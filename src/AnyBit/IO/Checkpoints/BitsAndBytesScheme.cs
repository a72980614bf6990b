using System.Text.Json;
using AnyBit.Quantization;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// bitsandbytes checkpoints as transformers saves them (<c>quant_method: "bitsandbytes"</c>), read from bitsandbytes'
/// <c>bitsandbytes/functional.py</c> (<c>QuantState.as_dict</c>/<c>from_dict</c>, <c>dequantize_4bit</c>,
/// <c>dequantize_blockwise</c>, <c>int8_vectorwise_dequant</c>), <c>bitsandbytes/backends/default/ops.py</c> and
/// <c>bitsandbytes/nn/modules.py</c> (<c>Linear4bit</c>/<c>Linear8bitLt._save_to_state_dict</c>).
/// <para><b>4-bit</b> (<c>load_in_4bit</c>, NF4 or FP4): <c>PREFIX.weight</c> holds the codes of the flattened
/// row-major [out, in] weight two per byte, the first in the high nibble (any storage dtype: its bytes are read);
/// <c>weight.absmax</c> one scale per block of <c>blocksize</c> codes; <c>weight.quant_map</c> the 16 code values;
/// <c>weight.quant_state.bitsandbytes__nf4</c> (or <c>__fp4</c>) UTF-8 JSON with <c>shape</c>, <c>blocksize</c>,
/// <c>quant_type</c>, <c>dtype</c> and, double-quantized, <c>nested_blocksize</c>, <c>nested_offset</c>,
/// <c>nested_dtype</c>. Double quantization stores <c>absmax</c> as u8 codes into <c>weight.nested_quant_map</c>
/// (256 values, <c>create_dynamic_map</c>) with one float32 <c>weight.nested_absmax</c> per <c>nested_blocksize</c>
/// codes, and w = quant_map[q]·absmax with absmax[b] = (nested_quant_map[a[b]]·nested_absmax[b / nested_blocksize])
/// + nested_offset, a float32 product and then a float32 sum (two roundings, as bitsandbytes' separate
/// <c>dequantize_blockwise</c> and <c>+=</c> give). The weight becomes AnyBit's <c>nf4:gN</c>/<c>fp4:gN</c> (the
/// same block layout: float32 absmax, then the codes), N the block size where the kernels run it, else the largest
/// compiled size dividing it with each part repeating its block's absmax. AnyBit's tables must equal the stored
/// quant_map bit for bit (bitsandbytes' <c>dequantize_4bit</c> uses its built-in table, which they equal), and blocks
/// must not straddle rows. What differs from bitsandbytes: its dequantization rounds quant_map[q]·absmax to the
/// checkpoint's <c>dtype</c> (usually bf16) for its matmul; AnyBit keeps the float32 product.</para>
/// <para><b>8-bit</b> LLM.int8 (<c>load_in_8bit</c>): <c>PREFIX.weight</c> int8 [out, in], <c>PREFIX.SCB</c> float32
/// [out] (each row's absmax), optionally <c>PREFIX.weight_format</c> (0 = row-major, the only layout saved since
/// bitsandbytes 0.45). bitsandbytes' <c>int8_vectorwise_dequant</c> computes (q·SCB)·c in float32 with
/// c = 7.874015718698502e-3 = float32(1/127), two roundings. AnyBit's <c>int8:gG:sym:f32</c> (code = q + 128, zero
/// 128, G the largest compiled group dividing the row) holds s = float32(SCB·c) per row and gives s·q, also two
/// roundings in the other order; the two agree within one float32 ulp (and exactly when q is a power of two).
/// The outlier decomposition of LLM.int8's matmul (<c>llm_int8_threshold</c>) is a property of its activations'
/// path, not of the stored weights, and is not reproduced.</para>
/// </summary>
public sealed class BitsAndBytesScheme : CheckpointScheme
{
    /// <summary>bitsandbytes' float32(1/127), the constant of <c>int8_vectorwise_dequant</c>.</summary>
    public const float InverseOf127 = 7.874015718698502e-3f;

    private const string QuantState = ".weight.quant_state.bitsandbytes__";

    public override IReadOnlyList<string> Methods => ["bitsandbytes"];

    public override CheckpointReader Open(JsonElement config, string source)
    {
        bool four = (ConfigValues.Bool(config, "load_in_4bit") ?? ConfigValues.Bool(config, "_load_in_4bit")) == true;
        bool eight = (ConfigValues.Bool(config, "load_in_8bit") ?? ConfigValues.Bool(config, "_load_in_8bit")) == true;
        if (four == eight)
            throw new InvalidModelFileException(source, $"quantization_config (bitsandbytes) must set exactly one of load_in_4bit and load_in_8bit");
        string description = eight ? "bitsandbytes LLM.int8 (int8 per-row)"
            : $"bitsandbytes {ConfigValues.Str(config, "bnb_4bit_quant_type") ?? "fp4"}"
              + (ConfigValues.Bool(config, "bnb_4bit_use_double_quant") == true ? " (double quant)" : "");
        return new Reader(description);
    }

    private sealed class Reader(string description) : CheckpointReader
    {
        public override string Description => description;

        public override string? ModuleOf(string tensorName)
        {
            int i = tensorName.LastIndexOf(QuantState, StringComparison.Ordinal);
            if (i > 0 && tensorName.Length - i - QuantState.Length == 3) return tensorName[..i];
            return tensorName.EndsWith(".SCB", StringComparison.Ordinal) ? tensorName[..^".SCB".Length] : null;
        }

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            var nf4 = m.Optional("weight.quant_state.bitsandbytes__nf4");
            var fp4 = m.Optional("weight.quant_state.bitsandbytes__fp4");
            if (nf4 is not null && fp4 is not null) throw m.Bad(fp4, "the module also has an nf4 quant_state");
            if ((nf4 ?? fp4) is { } state) return FourBit(prefix, m, state, nf4 is not null ? "nf4" : "fp4");
            return EightBit(prefix, m);
        }

        private static StoredTensor FourBit(string prefix, ModuleTensors m, StoredTensor state, string kind)
        {
            var qs = ReadState(m, state);
            string? quantType = ConfigValues.Str(qs, "quant_type");
            if (quantType != kind) throw m.Bad(state, $"quant_type '{quantType}' does not match the tensor's name ({kind})");
            int block = ConfigValues.Int(qs, "blocksize") ?? 0;
            if (block <= 0 || block % 2 != 0) throw m.Bad(state, $"blocksize {Raw(qs, "blocksize")} is not a positive even number");
            if (!qs.TryGetProperty("shape", out var shapeJson) || shapeJson.ValueKind != JsonValueKind.Array || shapeJson.GetArrayLength() != 2
                || shapeJson.EnumerateArray().Any(d => d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v <= 0))
                throw m.Bad(state, $"shape {Raw(qs, "shape")} is not [out features, in features]");
            int rows = shapeJson[0].GetInt32(), cols = shapeJson[1].GetInt32();
            long count = (long)rows * cols;
            if (count > int.MaxValue) throw m.Bad(state, $"shape [{rows}, {cols}] is too large");
            if (cols % block != 0) throw m.Bad(state, $"{cols} input features are not a multiple of the blocksize {block} (blocks would straddle rows)");
            int blocks = (int)(count / block);

            var weight = m.Required("weight");
            if (weight.ByteLength != count / 2)
                throw m.Bad(weight, $"{weight.ByteLength} bytes of 4-bit codes, the quant_state's shape [{rows}, {cols}] needs {count / 2}");

            var quantMap = m.Required("weight.quant_map");
            m.Expect(quantMap, [16], TensorType.F32);
            var table = kind == "nf4" ? LookupTableFormat.Nf4 : LookupTableFormat.Fp4;
            var stored = m.Floats(quantMap);
            for (int i = 0; i < 16; i++)
                if (BitConverter.SingleToInt32Bits(stored[i]) != BitConverter.SingleToInt32Bits(table[i]))
                    throw m.Bad(quantMap, $"value {stored[i]:R} at {i} is not bitsandbytes' {kind} code value {table[i]:R}");

            var absmaxTensor = m.Required("weight.absmax");
            float[] absmax;
            var nestedAbsmax = m.Optional("weight.nested_absmax");
            if (nestedAbsmax is null)
            {
                m.Expect(absmaxTensor, [blocks], TensorType.F32, TensorType.F16, TensorType.BF16);
                absmax = m.Floats(absmaxTensor);
            }
            else
            {
                m.Expect(absmaxTensor, [blocks], TensorType.U8);
                int nestedBlock = ConfigValues.Int(qs, "nested_blocksize") ?? 0;
                if (nestedBlock <= 0) throw m.Bad(state, $"nested_blocksize {Raw(qs, "nested_blocksize")} is not positive");
                if (!qs.TryGetProperty("nested_offset", out var offsetJson) || offsetJson.ValueKind != JsonValueKind.Number)
                    throw m.Bad(state, $"nested_offset {Raw(qs, "nested_offset")} is not a number");
                string nestedType = ConfigValues.Str(qs, "nested_dtype") ?? "float32";
                if (nestedType != "float32") throw m.Bad(state, $"nested_dtype '{nestedType}' is not supported (float32 is)");
                float offset = (float)offsetJson.GetDouble();
                var nestedMap = m.Required("weight.nested_quant_map");
                m.Expect(nestedMap, [256], TensorType.F32);
                m.Expect(nestedAbsmax, [(blocks + nestedBlock - 1) / nestedBlock], TensorType.F32);
                var map = m.Floats(nestedMap);
                var scale = m.Floats(nestedAbsmax);
                var codes = absmaxTensor.Bytes;
                absmax = new float[blocks];
                for (int b = 0; b < blocks; b++)
                {
                    float product = map[codes[b]] * scale[b / nestedBlock];
                    absmax[b] = product + offset;
                }
            }

            int group = IntRepack.KernelGroup(block);
            var format = new LookupTableFormat(kind, group);
            int perRow = cols / group, blockBytes = format.BytesPerBlock;
            long rowBytes = (long)perRow * blockBytes;
            var file = MappedFile.InMemory(m.Source, rows * rowBytes);
            try
            {
                var codes = weight.Bytes;
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < perRow; k++)
                    {
                        long first = (long)r * cols + (long)k * group;
                        var dst = file.Writable(r * rowBytes + (long)k * blockBytes, blockBytes);
                        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(dst, absmax[first / block]);
                        codes.Slice((int)(first / 2), group / 2).CopyTo(dst[4..]);
                    }
            }
            catch
            {
                file.Dispose();
                throw;
            }
            return new StoredTensor(prefix + ".weight", [rows, cols], (TensorType)FormatRegistry.FirstCustomTypeId, file, 0, file.Length, format);
        }

        private static StoredTensor EightBit(string prefix, ModuleTensors m)
        {
            var weight = m.Required("weight");
            var scb = m.Required("SCB");
            if (weight.Shape.Length != 2 || weight.Type != TensorType.I8)
                throw m.Bad(weight, $"expected a 2-D int8 tensor, found {TensorTypes.Traits(weight.Type).Name} [{string.Join(", ", weight.Shape)}]");
            if (weight.Shape[0] > int.MaxValue / 2 || weight.Shape[1] > int.MaxValue / 2) throw m.Bad(weight, "too large");
            int rows = (int)weight.Shape[0], cols = (int)weight.Shape[1];
            m.Expect(scb, [rows], TensorType.F32);
            if (m.Optional("weight_format") is { } layout)
            {
                if (layout.ElementCount != 1 || layout.Type is not (TensorType.U8 or TensorType.I8 or TensorType.I32 or TensorType.I64))
                    throw m.Bad(layout, $"expected one integer, found {TensorTypes.Traits(layout.Type).Name} [{string.Join(", ", layout.Shape)}]");
                if (layout.Bytes.IndexOfAnyExcept((byte)0) >= 0)
                    throw m.Bad(layout, "weight format is not 0 (row-major; bitsandbytes' col32/col_turing/col_ampere layouts are not supported)");
            }
            var stats = m.Floats(scb);
            var scales = stats.Select(v => v * InverseOf127).ToArray();
            var q = weight.Bytes.ToArray();
            return IntRepack.Build(m.Source, prefix + ".weight", rows, cols, 8, cols,
                (r, c) => (sbyte)q[(long)r * cols + c] + 128, (r, _) => scales[r], (_, _) => 128, inputOrder: null);
        }

        private static JsonElement ReadState(ModuleTensors m, StoredTensor state)
        {
            if (state.Type != TensorType.U8 || state.Shape.Length != 1)
                throw m.Bad(state, $"expected 1-D uint8 JSON bytes, found {TensorTypes.Traits(state.Type).Name} [{string.Join(", ", state.Shape)}]");
            try
            {
                using var doc = JsonDocument.Parse(state.Bytes.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw m.Bad(state, "the quant_state JSON is not an object");
                return doc.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw m.Bad(state, $"is not JSON ({e.Message.Split('\n')[0].Trim()})");
            }
        }

        private static string Raw(JsonElement e, string key) => e.TryGetProperty(key, out var v) ? v.GetRawText() : "(absent)";
    }
}
