using AnyBit.Kernels;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// Weights held in 16 bits (<see cref="NarrowMatrix"/>) only where every value survives exactly, and multiplied to
/// the same bits as the float32 path (<see cref="MatMulF32"/>, itself checked against the scalar reference).
/// </summary>
public unsafe class NarrowMatrixTests
{
    private static float[] Values(int count, int seed, Func<float, float> round)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => round((float)(rng.NextDouble() * 2 - 1) * 0.1f)).ToArray();
    }

    private static float ToF16(float v) => (float)(Half)v;
    private static float ToBf16(float v) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u);

    [Theory]
    [InlineData(1, 64, 64, NarrowKind.F16)]
    [InlineData(3, 17, 5, NarrowKind.F16)]     // K with a scalar tail, rows not a multiple of 4
    [InlineData(4, 100, 37, NarrowKind.BF16)]  // the last item's last rows outside every 4-row tile
    [InlineData(9, 256, 130, NarrowKind.F16)]
    [InlineData(5, 7, 3, NarrowKind.BF16)]     // K below one vector
    [InlineData(33, 48, 40, NarrowKind.BF16)]
    public void Products_are_the_float32_paths_bits(int tokens, int k, int n, NarrowKind kind)
    {
        var x = Values(tokens * k, 1, v => v * 10);
        var w = Values(n * k, 2, kind == NarrowKind.F16 ? ToF16 : ToBf16);
        if (kind == NarrowKind.BF16) w[n * k / 2] = ToBf16(1e-30f); // bf16's exponent range, beyond f16's
        using var half = NarrowMatrix.TryCreate(w, n, k);
        Assert.NotNull(half);
        Assert.Equal(kind, half!.Kind);
        Assert.Equal(2L * n * k, half.ByteLength);
        var expected = new float[tokens * n];
        var y = new float[tokens * n];
        using var pool = new WorkerPool(3);
        var mm = new MatMulNarrow();
        fixed (float* px = x, pw = w, pe = expected, py = y)
        {
            new MatMulF32().Run(pool, px, tokens, k, pw, n, pe);
            mm.Run(pool, px, tokens, half, py);
        }
        for (int i = 0; i < y.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(y[i]));
    }

    /// <summary>MXFP8 blocks made by the format's quantizer, kept as stored: the products of the dequantized values.</summary>
    [Theory]
    [InlineData("mxfp8_e4m3", NarrowKind.MxE4M3, 1, 64, 37)]
    [InlineData("mxfp8_e4m3", NarrowKind.MxE4M3, 9, 256, 20)]
    [InlineData("mxfp8_e5m2", NarrowKind.MxE5M2, 5, 96, 16)]
    [InlineData("mxfp8_e5m2", NarrowKind.MxE5M2, 4, 32, 9)]
    public void Mx_blocks_multiply_to_the_float32_paths_bits(string format, NarrowKind kind, int tokens, int k, int n)
    {
        var (stored, w) = MxMatrix(format, n, k, seed: tokens + k);
        using var m = NarrowMatrix.TryCreateMx(stored, kind, w, n, k);
        Assert.NotNull(m);
        Assert.Equal(n * k / 32 * 33L, m!.ByteLength);
        AssertProductsAreFloat32s(m, w, tokens, k, n);
    }

    /// <summary>E4M3 blocks with float32 scales (FP8 checkpoints' layout, made by the format's quantizer), kept as
    /// stored: the products of the dequantized values.</summary>
    [Theory]
    [InlineData(1, 64, 37)]
    [InlineData(9, 256, 20)]
    [InlineData(4, 32, 9)]
    public void Scaled_fp8_blocks_multiply_to_the_float32_paths_bits(int tokens, int k, int n)
    {
        var (stored, w) = MxMatrix("e4m3fn:g32:f32", n, k, seed: tokens + k);
        using var m = NarrowMatrix.TryCreateScaled(stored, w, n, k);
        Assert.NotNull(m);
        Assert.Equal(n * k / 32 * 36L, m!.ByteLength);
        AssertProductsAreFloat32s(m, w, tokens, k, n);
        var nan = (byte[])stored.Clone();
        nan[7] = 0x7F; // an E4M3 NaN element
        Assert.Null(NarrowMatrix.TryCreateScaled(nan, Dequantize("e4m3fn:g32:f32", nan, n, k), n, k));
    }

    /// <summary>X·Wᵀ through <paramref name="m"/> is, bit for bit, X·Wᵀ on the float32 copy <paramref name="w"/>.</summary>
    private static void AssertProductsAreFloat32s(NarrowMatrix m, float[] w, int tokens, int k, int n)
    {
        var x = Values(tokens * k, 5, v => v * 10);
        var expected = new float[tokens * n];
        var y = new float[tokens * n];
        using var pool = new WorkerPool(3);
        fixed (float* px = x, pw = w, pe = expected, py = y)
        {
            new MatMulF32().Run(pool, px, tokens, k, pw, n, pe);
            new MatMulNarrow().Run(pool, px, tokens, m, py);
        }
        for (int i = 0; i < y.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(y[i]));
    }

    [Fact]
    public void Mx_blocks_the_widening_cannot_reproduce_are_refused()
    {
        var (stored, w) = MxMatrix("mxfp8_e4m3", 2, 64, seed: 7);
        Assert.NotNull(NarrowMatrix.TryCreateMx(stored, NarrowKind.MxE4M3, w, 2, 64));
        var huge = (byte[])stored.Clone();
        huge[33] = 200; // a scale of 2^73: past float32 once rebiased by 2^120
        Assert.Null(NarrowMatrix.TryCreateMx(huge, NarrowKind.MxE4M3, Dequantize("mxfp8_e4m3", huge, 2, 64), 2, 64));
        var nan = (byte[])stored.Clone();
        nan[5] = 0x7F; // an E4M3 NaN element
        Assert.Null(NarrowMatrix.TryCreateMx(nan, NarrowKind.MxE4M3, Dequantize("mxfp8_e4m3", nan, 2, 64), 2, 64));
        Assert.Null(NarrowMatrix.TryCreateMx(stored.AsSpan(1).ToArray(), NarrowKind.MxE4M3, w, 2, 64)); // truncated
    }

    private static (byte[] Stored, float[] Values) MxMatrix(string format, int rows, int columns, int seed)
    {
        var f = FormatRegistry.Parse(format);
        var w = Values(rows * columns, seed, v => v * (1 + seed % 3));
        var stored = new byte[rows * columns / f.BlockSize * f.BytesPerBlock];
        int rowBytes = columns / f.BlockSize * f.BytesPerBlock;
        for (int r = 0; r < rows; r++) f.QuantizeRow(w.AsSpan(r * columns, columns), stored.AsSpan(r * rowBytes, rowBytes));
        return (stored, Dequantize(format, stored, rows, columns));
    }

    private static float[] Dequantize(string format, byte[] stored, int rows, int columns)
    {
        var values = new float[rows * columns];
        FormatRegistry.Parse(format).Dequantize(stored, values);
        return values;
    }

    [Fact]
    public void Widened_rows_are_the_values_it_was_made_from()
    {
        var w = Values(3 * 40, 3, ToF16);
        w[5] = -0f; w[6] = 65504f; w[7] = (float)Half.Epsilon; // −0, F16's largest and smallest subnormal
        using var half = NarrowMatrix.TryCreate(w, 3, 40)!;
        var row = new float[40];
        for (int r = 0; r < 3; r++)
        {
            half.WidenRow(r, row);
            Assert.Equal(w.Skip(40 * r).Take(40).Select(BitConverter.SingleToInt32Bits), row.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void A_value_that_neither_16_bit_float_holds_keeps_the_matrix_in_float32()
    {
        var w = Values(2 * 16, 4, ToF16);
        Assert.NotNull(NarrowMatrix.TryCreate(w, 2, 16));
        w[9] = 1.0000001f; // 24 significant bits
        Assert.Null(NarrowMatrix.TryCreate(w, 2, 16));
        Assert.Throws<ArgumentException>(() => NarrowMatrix.TryCreate(w, 3, 16));
    }
}
