using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Tests;

/// <summary>
/// The parts of a prompt's forward pass around the weight kernels: activation rows quantized on the pool, int8
/// codes reused across Q/K/V and gate/up, and the fused attention kernel.
/// </summary>
public unsafe class PrefillPathTests
{
    [Fact]
    public void Activation_rows_quantized_on_the_pool_equal_serial_quantization_and_their_sums()
    {
        int tokens = 7, cols = 512;
        var rng = new Random(3);
        var x = Enumerable.Range(0, tokens * cols).Select(i => (float)((rng.NextDouble() * 2 - 1) * (i % 61 == 0 ? 30 : 1))).ToArray();
        using var serial = new QuantizedActivations(tokens, cols, 32);
        fixed (float* p = x) serial.Quantize(p, tokens, cols);
        for (int t = 0; t < tokens; t++)
            for (int g = 0; g < cols / 16; g++)
            {
                int sum = 0;
                for (int i = 0; i < 16; i++) sum += serial.Codes(t)[16 * g + i];
                Assert.Equal(sum, (int)serial.Sums16(t)[g]);
            }
        // Lane sums: per 32 codes, Σ of columns 4k and 4k+1 in the low int16, of 4k+2 and 4k+3 in the high.
        for (int t = 0; t < tokens; t++)
            for (int b = 0; b < cols / 32; b++)
            {
                int even = 0, odd = 0;
                for (int i = 0; i < 32; i++)
                    if (i % 4 < 2) even += serial.Codes(t)[32 * b + i];
                    else odd += serial.Codes(t)[32 * b + i];
                int lanes = serial.LaneSums(t)[b];
                Assert.Equal((even, odd), ((int)(short)lanes, lanes >> 16));
            }

        // The same rows through a matrix product on a 3-worker pool (rows quantized as pool items) give the product
        // of the serially quantized rows, computed by the scalar reference.
        var (_, bytes) = QuantizedKernelTests.RandomMatrix("Q4_0", 40, cols, 5);
        using var m = QuantizedKernelTests.Pack("Q4_0", 40, cols, bytes);
        var pooled = new float[tokens * 40];
        using var pool = new WorkerPool(3);
        using var mm = new QuantizedMatMul(tokens);
        fixed (float* p = x, y = pooled) mm.Run(pool, p, tokens, m, y, KernelMode.Reference, perTokenScale: false);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < 40; r++)
                Assert.Equal(ReferenceKernelRow(m, r, serial, t), pooled[t * 40 + r]);
    }

    [Fact]
    public void Same_input_reuses_codes_only_where_they_were_made_from_that_input()
    {
        int tokens = 3, cols = 512, rows = 16;
        var rng = new Random(11);
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        using var q40 = QuantizedKernelTests.Pack("Q4_0", rows, cols, QuantizedKernelTests.RandomMatrix("Q4_0", rows, cols, 1).Bytes);
        using var q4k = QuantizedKernelTests.Pack("Q4_K", rows, cols, QuantizedKernelTests.RandomMatrix("Q4_K", rows, cols, 2).Bytes);
        using var pool = new WorkerPool(2);
        using var mm = new QuantizedMatMul(tokens);
        var expected40 = new float[tokens * rows];
        var expected4k = new float[tokens * rows];
        var y = new float[tokens * rows];
        fixed (float* px = x, e40 = expected40, e4k = expected4k, py = y)
        {
            mm.Run(pool, px, tokens, q40, e40, KernelMode.Fast, false);
            mm.Run(pool, px, tokens, q4k, e4k, KernelMode.Fast, false);

            // Same input, other block size: Q4_K's 256-blocks were not made under this input, so they are made now.
            mm.Run(pool, px, tokens, q40, py, KernelMode.Fast, false);
            mm.Run(pool, px, tokens, q4k, py, KernelMode.Fast, false, sameInput: true);
            Assert.Equal(expected4k, y);
            mm.Run(pool, px, tokens, q40, py, KernelMode.Fast, false, sameInput: true);
            Assert.Equal(expected40, y);

            // A new input at the same address (a float weight ran in between): nothing may be reused.
            var before = (float[])x.Clone();
            for (int i = 0; i < x.Length; i++) x[i] = -x[i] * 0.5f;
            mm.InputChanged();
            mm.Run(pool, px, tokens, q40, py, KernelMode.Fast, false, sameInput: true);
            Assert.NotEqual(expected40, y);
            var fresh = new float[tokens * rows];
            fixed (float* pf = fresh) mm.Run(pool, px, tokens, q40, pf, KernelMode.Fast, false);
            Assert.Equal(fresh, y);
            before.CopyTo(x, 0);
        }
    }

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 130)]
    [InlineData(128, 37)]
    [InlineData(80, 9)]    // 64 + 16: the 16-wide tail
    [InlineData(12, 5)]    // not a multiple of 16: the scalar path
    public void Fused_attention_matches_the_double_precision_reference(int headDim, int count)
    {
        var rng = new Random(headDim * 1000 + count);
        float[] Random(int n, double spread) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * spread)).ToArray();
        var q = Random(headDim, 2);
        var k = Random(headDim * count, 2);
        var v = Random(headDim * count, 1);
        var scores = new float[count];
        var reference = new float[headDim];
        var fast = new float[headDim];
        float scale = 1f / MathF.Sqrt(headDim);
        fixed (float* pq = q, pk = k, pv = v, ps = scores, pr = reference, pf = fast)
        {
            AttentionKernel.HeadReference(pq, pk, pv, headDim, count, scale, ps, pr);
            AttentionKernel.Head(pq, pk, pv, headDim, count, scale, ps, pf);
        }
        for (int i = 0; i < headDim; i++) Assert.True(Math.Abs(reference[i] - fast[i]) <= 2e-6f + 2e-5f * Math.Abs(reference[i]), $"dim {i}: {fast[i]} vs {reference[i]}");

        // And the reference against a direct evaluation of softmax(q·K/√d)·V.
        var logits = Enumerable.Range(0, count).Select(j => Enumerable.Range(0, headDim).Sum(i => (double)q[i] * k[j * headDim + i]) * scale).ToArray();
        double max = logits.Max();
        var weights = logits.Select(l => Math.Exp(l - max)).ToArray();
        double total = weights.Sum();
        for (int i = 0; i < headDim; i++)
        {
            double expected = Enumerable.Range(0, count).Sum(j => weights[j] / total * v[j * headDim + i]);
            Assert.True(Math.Abs(expected - reference[i]) <= 1e-5, $"dim {i}: {reference[i]} vs {expected}");
        }
    }

    private static float ReferenceKernelRow(PackedMatrix m, int row, QuantizedActivations a, int token) => ReferenceKernel.Row(m, row, a, token);
}
