using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// The float dequantizer of every ggml block type, from its integer decode: w = (d·sc)·(code + offset) − dmin·m per
/// 16 values. That is ggml's dequantize_row_* for each of them, operation for operation (products rounded to float,
/// no fused multiply-add; a missing sub-scale is 1 and a missing min 0, which change nothing), so the floats are
/// bit-identical to llama.cpp's (the fixture tests check every type).
/// </summary>
internal static class BlockDequantizer
{
    /// <summary>Whole blocks of <paramref name="format"/>, whose integer form is <typeparamref name="TK"/>.</summary>
    public static void Dequantize<TK>(TensorFormat format, ReadOnlySpan<byte> src, Span<float> dst) where TK : struct, IKindTraits
    {
        int n = format.BlockSize, bytes = format.BytesPerBlock;
        Span<byte> codes = stackalloc byte[n];
        Span<int> scales = stackalloc int[n / 16], mins = stackalloc int[n / 16];
        Span<float> levels = stackalloc float[256];
        var lut = TK.Lut;
        for (int i = 0; i < (lut is null ? 1 << TK.Bits : lut.Length); i++)
            levels[i] = (lut is null ? i : lut[i] + 128 * (TK.LutHigh?[i] ?? 0)) + TK.Offset;
        for (int b = 0; b < dst.Length / n; b++)
        {
            var o = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
            BlockDecoder.Decode(format, src.Slice(b * bytes, bytes), ref o);
            var y = dst.Slice(b * n, n);
            for (int h = 0; h < n / 16; h++)
            {
                float dl = o.D * scales[h], ml = o.DMin * mins[h];
                for (int l = 16 * h; l < 16 * h + 16; l++) y[l] = dl * levels[codes[l]] - ml;
            }
        }
    }
}
