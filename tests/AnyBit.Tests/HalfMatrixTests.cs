using AnyBit.Kernels;

namespace AnyBit.Tests;

/// <summary>
/// Weights held in 16 bits (<see cref="HalfMatrix"/>) only where every value survives exactly, and multiplied to
/// the same bits as the float32 path (<see cref="MatMulF32"/>, itself checked against the scalar reference).
/// </summary>
public unsafe class HalfMatrixTests
{
    private static float[] Values(int count, int seed, Func<float, float> round)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => round((float)(rng.NextDouble() * 2 - 1) * 0.1f)).ToArray();
    }

    private static float ToF16(float v) => (float)(Half)v;
    private static float ToBf16(float v) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u);

    [Theory]
    [InlineData(1, 64, 64, HalfKind.F16)]
    [InlineData(3, 17, 5, HalfKind.F16)]     // K with a scalar tail, rows not a multiple of 4
    [InlineData(4, 100, 37, HalfKind.BF16)]  // the last item's last rows outside every 4-row tile
    [InlineData(9, 256, 130, HalfKind.F16)]
    [InlineData(5, 7, 3, HalfKind.BF16)]     // K below one vector
    [InlineData(33, 48, 40, HalfKind.BF16)]
    public void Products_are_the_float32_paths_bits(int tokens, int k, int n, HalfKind kind)
    {
        var x = Values(tokens * k, 1, v => v * 10);
        var w = Values(n * k, 2, kind == HalfKind.F16 ? ToF16 : ToBf16);
        if (kind == HalfKind.BF16) w[n * k / 2] = ToBf16(1e-30f); // bf16's exponent range, beyond f16's
        using var half = HalfMatrix.TryCreate(w, n, k);
        Assert.NotNull(half);
        Assert.Equal(kind, half!.Kind);
        Assert.Equal(2L * n * k, half.ByteLength);
        var expected = new float[tokens * n];
        var y = new float[tokens * n];
        using var pool = new WorkerPool(3);
        var mm = new MatMulHalf();
        fixed (float* px = x, pw = w, pe = expected, py = y)
        {
            new MatMulF32().Run(pool, px, tokens, k, pw, n, pe);
            mm.Run(pool, px, tokens, half, py);
        }
        for (int i = 0; i < y.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(y[i]));
    }

    [Fact]
    public void Widened_rows_are_the_values_it_was_made_from()
    {
        var w = Values(3 * 40, 3, ToF16);
        w[5] = -0f; w[6] = 65504f; w[7] = (float)Half.Epsilon; // −0, F16's largest and smallest subnormal
        using var half = HalfMatrix.TryCreate(w, 3, 40)!;
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
        Assert.NotNull(HalfMatrix.TryCreate(w, 2, 16));
        w[9] = 1.0000001f; // 24 significant bits
        Assert.Null(HalfMatrix.TryCreate(w, 2, 16));
        Assert.Throws<ArgumentException>(() => HalfMatrix.TryCreate(w, 3, 16));
    }
}
