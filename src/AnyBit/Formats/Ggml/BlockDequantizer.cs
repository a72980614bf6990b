using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// The float dequantizer of every ggml block type, from its integer decode: w = (d·sc)·(code + offset) − dmin·m per
/// 16 values. That is ggml's dequantize_row_* for each of them, operation for operation (products rounded to float,
/// no fused multiply-add; a missing sub-scale is 1 and a missing min 0, which change nothing), so the floats are
/// bit-identical to llama.cpp's (the fixture tests check every type). The same step d·sc, shift dmin·m and levels
/// are what <see cref="IFixedScaleRounding"/> hands GPTQ, so the values it rounds to are the decoded ones.
/// </summary>
internal static class BlockDequantizer
{
    /// <summary>Whole blocks of <paramref name="format"/>, whose integer form is <typeparamref name="TK"/>.</summary>
    public static void Dequantize<TK>(TensorFormat format, ReadOnlySpan<byte> src, Span<float> dst) where TK : struct, IKindTraits
    {
        int n = format.BlockSize, bytes = format.BytesPerBlock;
        Span<byte> codes = stackalloc byte[n];
        Span<float> step = stackalloc float[n / 16], shift = stackalloc float[n / 16];
        var levels = Levels<TK>.Values;
        for (int b = 0; b < dst.Length / n; b++)
        {
            ReadBlock(format, src.Slice(b * bytes, bytes), step, shift, codes);
            var y = dst.Slice(b * n, n);
            for (int h = 0; h < n / 16; h++)
            {
                float dl = step[h], ml = shift[h];
                for (int l = 16 * h; l < 16 * h + 16; l++) y[l] = dl * levels[codes[l]] - ml;
            }
        }
    }

    /// <summary>One block's codes, and per 16 values its step d·sc and shift dmin·m (each a float product).</summary>
    public static void ReadBlock(TensorFormat format, ReadOnlySpan<byte> block, Span<float> step16, Span<float> shift16, Span<byte> codes)
    {
        int groups = format.BlockSize / 16;
        Span<int> scales = stackalloc int[groups], mins = stackalloc int[groups];
        var o = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
        BlockDecoder.Decode(format, block, ref o);
        for (int h = 0; h < groups; h++)
        {
            step16[h] = o.D * scales[h];
            shift16[h] = o.DMin * mins[h];
        }
    }

    /// <summary>Each code's level, code + offset or the table's entry + offset: ascending for every scalar type.</summary>
    public static class Levels<TK> where TK : struct, IKindTraits
    {
        public static readonly float[] Values = Build();

        private static float[] Build()
        {
            var lut = TK.Lut;
            var levels = new float[lut is null ? 1 << TK.Bits : lut.Length];
            for (int i = 0; i < levels.Length; i++) levels[i] = (lut is null ? i : lut[i] + 128 * (TK.LutHigh?[i] ?? 0)) + TK.Offset;
            return levels;
        }
    }
}
