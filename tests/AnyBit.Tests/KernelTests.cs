using AnyBit.Kernels;

namespace AnyBit.Tests;

public unsafe class KernelTests
{
    [Theory]
    [InlineData(1, 64, 64)]
    [InlineData(3, 17, 5)]      // K with a scalar tail, odd rows, tokens not a multiple of 4
    [InlineData(4, 16, 4)]
    [InlineData(9, 100, 37)]
    [InlineData(33, 256, 130)]
    [InlineData(5, 7, 3)]       // K below one vector
    public void MatMul_matches_the_scalar_reference(int tokens, int k, int n)
    {
        var rng = new Random(tokens * 1000 + k * 10 + n);
        var x = Enumerable.Range(0, tokens * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var expected = new float[tokens * n];
        MatMulF32.Reference(x, tokens, k, w, n, expected);
        var y = new float[tokens * n];
        using var pool = new WorkerPool(3);
        fixed (float* px = x, pw = w, py = y)
            new MatMulF32().Run(pool, px, tokens, k, pw, n, py);
        for (int i = 0; i < y.Length; i++) Assert.Equal(expected[i], y[i], 1e-4f);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(255)]
    [InlineData(5632)] // several stack chunks and a tail
    public void Silu_gate_matches_the_formula(int n)
    {
        var rng = new Random(n);
        var gate = Enumerable.Range(0, n).Select(i => (float)((rng.NextDouble() * 2 - 1) * (i % 17 == 0 ? 40 : 6))).ToArray();
        var up = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var expected = gate.Select((g, i) => g / (1 + Math.Exp(-(double)g)) * up[i]).ToArray();
        Ops.SiluMultiply(gate, up);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(gate[i] - expected[i]) <= 1e-6 + 1e-6 * Math.Abs(expected[i]), $"{i}: {gate[i]} vs {expected[i]}");
    }

    private sealed class Throwing : IParallelWork
    {
        public void Execute(int item, int worker)
        {
            if (item == 5) throw new InvalidOperationException("boom");
        }
    }

    private sealed class Counting : IParallelWork
    {
        public int[] Hits = new int[1000];
        public void Execute(int item, int worker) => Interlocked.Increment(ref Hits[item]);
    }

    [Fact]
    public void WorkerPool_runs_every_item_once_and_reports_failures()
    {
        using var pool = new WorkerPool(4);
        var c = new Counting();
        for (int round = 0; round < 50; round++) pool.Run(c, 1000);
        Assert.All(c.Hits, h => Assert.Equal(50, h));
        var e = Assert.Throws<AggregateException>(() => pool.Run(new Throwing(), 100));
        Assert.IsType<InvalidOperationException>(e.InnerException);
        pool.Run(c, 1000); // still usable
        Assert.All(c.Hits, h => Assert.Equal(51, h));
    }

    [Fact]
    public void Int8_activation_quantization_is_round_half_even_of_absmax_scaling()
    {
        // max 127 → s = 1: values are rounded to integers, ties to even, then divided back.
        float[] x = [127f, 0.5f, 1.5f, -2.5f, 3.49f, -127f];
        Ops.QuantizeActivationsInt8(x);
        Assert.Equal(new float[] { 127, 0, 2, -2, 3, -127 }, x);
        float[] zeros = [0, 0, 0];
        Ops.QuantizeActivationsInt8(zeros);
        Assert.Equal(new float[] { 0, 0, 0 }, zeros);
    }

    [Fact]
    public void Ternarization_keeps_ternary_tensors_and_absmean_quantizes_others()
    {
        float[] already = [0.7f, -0.7f, 0, 0.7f];
        AnyBit.Models.Ternary.TernarizeInPlace(already);
        Assert.Equal(new[] { 0.7f, -0.7f, 0, 0.7f }, already);
        float[] w = [0.1f, -0.4f, 0.02f, 0.3f]; // mean |w| = 0.205
        AnyBit.Models.Ternary.TernarizeInPlace(w);
        float s = (0.1f + 0.4f + 0.02f + 0.3f) / 4;
        Assert.Equal(new[] { 0, -s, 0, s }, w);
    }
}
