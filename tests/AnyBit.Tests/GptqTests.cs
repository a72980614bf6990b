using AnyBit.Quantization;
using AnyBit.Quantization.Methods;

namespace AnyBit.Tests;

/// <summary>GPTQ against a textbook implementation written here (the original OBQ-style elimination, no Cholesky, no batching).</summary>
public class GptqTests
{
    /// <summary>Rounds to a fixed grid per row: the grid step is fitted once per group from its values.</summary>
    private sealed class GridRounder(int rows, int columns, int group) : IColumnRounder
    {
        public readonly float[] Step = new float[rows * (columns / group)];
        public int GroupSize => group;
        public void Fit(int row, int g, ReadOnlySpan<float> values)
        {
            float amax = 0;
            foreach (var v in values) amax = MathF.Max(amax, MathF.Abs(v));
            Step[row * (columns / group) + g] = amax / 7;
        }
        public float Round(int row, int column, float value)
        {
            float s = Step[row * (columns / group) + column / group];
            return s == 0 ? 0 : MathF.Round(value / s) * s;
        }
        public byte[] Encode() => [];
    }

    internal static (float[] W, double[] H) RandomLayer(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int samples = 3 * cols;
        var x = new double[samples * cols];
        for (int s = 0; s < samples; s++)
        {
            double shared = rng.NextDouble() * 2 - 1; // correlated inputs make the error feedback matter
            for (int i = 0; i < cols; i++) x[s * cols + i] = (rng.NextDouble() * 2 - 1) * (1 + i % 5) + shared;
        }
        var h = new double[cols * cols];
        for (int s = 0; s < samples; s++)
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < cols; j++) h[i * cols + j] += x[s * cols + i] * x[s * cols + j];
        return (w, h);
    }

    /// <summary>Textbook GPTQ: quantize column i, push its error onto later columns with H⁻¹, eliminate i from H⁻¹.</summary>
    private static float[] Textbook(float[] w0, int rows, int n, double[] h, double damping, int[] order, GridRounder rounder, bool staticGroups)
    {
        var w = (float[])w0.Clone();
        var hd = new double[n * n];
        double mean = Enumerable.Range(0, n).Average(i => h[i * n + i]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) hd[i * n + j] = h[order[i] * n + order[j]] + (i == j ? damping * mean : 0);
        var hinv = Invert(hd, n);
        if (staticGroups)
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < n / rounder.GroupSize; g++) rounder.Fit(r, g, w.AsSpan(r * n + g * rounder.GroupSize, rounder.GroupSize));
        for (int p = 0; p < n; p++)
        {
            int col = order[p];
            for (int r = 0; r < rows; r++)
            {
                if (!staticGroups && col % rounder.GroupSize == 0) rounder.Fit(r, col / rounder.GroupSize, w.AsSpan(r * n + col, rounder.GroupSize));
                float value = w[r * n + col];
                float q = rounder.Round(r, col, value);
                double err = (value - q) / hinv[p * n + p];
                for (int j = p + 1; j < n; j++) w[r * n + order[j]] -= (float)(err * hinv[p * n + j]);
                w[r * n + col] = q;
            }
            double pivot = hinv[p * n + p];
            var rowP = Enumerable.Range(0, n).Select(j => hinv[p * n + j]).ToArray();
            var colP = Enumerable.Range(0, n).Select(i => hinv[i * n + p]).ToArray();
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) hinv[i * n + j] -= colP[i] * rowP[j] / pivot;
        }
        return w;
    }

    private static double[] Invert(double[] a, int n)
    {
        var m = (double[])a.Clone();
        var inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++)
        {
            double p = m[c * n + c];
            for (int j = 0; j < n; j++) { m[c * n + j] /= p; inv[c * n + j] /= p; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = m[r * n + c];
                for (int j = 0; j < n; j++) { m[r * n + j] -= f * m[c * n + j]; inv[r * n + j] -= f * inv[c * n + j]; }
            }
        }
        return inv;
    }

    [Theory]
    [InlineData(false, 96, 1000)]
    [InlineData(false, 32, 16)]
    [InlineData(true, 32, 1000)]
    public void Matches_the_textbook_algorithm(bool actOrder, int group, int blockSize)
    {
        int rows = 24, n = 96;
        var (w0, h) = RandomLayer(rows, n, 11);
        int[] order = actOrder ? Gptq.ActOrder(h, n) : Enumerable.Range(0, n).ToArray();
        var expected = Textbook(w0, rows, n, h, 0.01, order, new GridRounder(rows, n, group), staticGroups: actOrder);

        var w = (float[])w0.Clone();
        var factor = Gptq.InverseHessianFactor(h, n, 0.01, actOrder ? order : null, out var dead);
        Gptq.Quantize(w, rows, n, factor, dead, actOrder ? order : null, new GridRounder(rows, n, group), new GptqOptions(0.01, blockSize, actOrder));
        for (int i = 0; i < w.Length; i++) Assert.True(MathF.Abs(w[i] - expected[i]) <= 1e-5f, $"weight {i}: {w[i]} vs {expected[i]}");
        // And it did something: the result is not plain rounding.
        var rtn = new GridRounder(rows, n, group);
        int differs = 0;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < n; c++)
            {
                if (c % group == 0) rtn.Fit(r, c / group, w0.AsSpan(r * n + c, group));
                if (rtn.Round(r, c, w0[r * n + c]) != w[r * n + c]) differs++;
            }
        Assert.True(differs > w.Length / 10);
    }

    [Fact]
    public void Lowers_the_output_error_versus_round_to_nearest()
    {
        int rows = 32, n = 128;
        var (w0, h) = RandomLayer(rows, n, 5);
        var format = new IntFormat(3, 32, symmetric: false);
        var w = (float[])w0.Clone();
        var factor = Gptq.InverseHessianFactor(h, n, 0.01, null, out var dead);
        var rounder = new IntColumnRounder(format, rows, n);
        Gptq.Quantize(w, rows, n, factor, dead, null, rounder, new GptqOptions());
        var rtn = new float[w0.Length];
        var rtnBytes = new byte[format.ByteSize(w0.Length)];
        format.Quantize(w0, n, rtnBytes);
        format.Dequantize(rtnBytes, rtn);
        // The encoded bytes decode to exactly the values GPTQ chose.
        var decoded = new float[w.Length];
        format.Dequantize(rounder.Encode(), decoded);
        Assert.Equal(w, decoded);
        Assert.True(OutputError(w0, w, h, rows, n) < 0.8 * OutputError(w0, rtn, h, rows, n));
    }

    [Fact]
    public void With_an_identity_Hessian_it_is_round_to_nearest_byte_for_byte()
    {
        int rows = 8, n = 64;
        var (w0, _) = RandomLayer(rows, n, 3);
        var h = new double[n * n];
        for (int i = 0; i < n; i++) h[i * n + i] = 1;
        foreach (var format in new[] { new IntFormat(4, 32, false), new IntFormat(3, 64, true) })
        {
            var rounder = new IntColumnRounder(format, rows, n);
            var factor = Gptq.InverseHessianFactor(h, n, 0.0, null, out var dead);
            Gptq.Quantize((float[])w0.Clone(), rows, n, factor, dead, null, rounder, new GptqOptions(0.0));
            var expected = new byte[format.ByteSize(w0.Length)];
            format.Quantize(w0, n, expected);
            Assert.Equal(expected, rounder.Encode());
        }
    }

    internal static double OutputError(float[] w0, float[] w, double[] h, int rows, int n)
    {
        // Σ_r (w0 − w)_r H (w0 − w)_rᵀ = ‖(W0 − W) X‖² over the calibration inputs.
        double total = 0;
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    total += (w0[r * n + i] - w[r * n + i]) * h[i * n + j] * (w0[r * n + j] - w[r * n + j]);
        return total;
    }
}
