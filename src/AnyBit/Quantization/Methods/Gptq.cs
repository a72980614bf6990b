namespace AnyBit.Quantization.Methods;

/// <summary>GPTQ settings.</summary>
/// <param name="Damping">added to H's diagonal as a fraction of its mean (percdamp)</param>
/// <param name="BlockSize">columns per lazy batch update</param>
/// <param name="ActOrder">process columns in order of decreasing H diagonal (group parameters are then fitted
/// up front from the unquantized weights, "static groups", since stored groups are contiguous columns)</param>
/// <param name="Sequential">each layer's Hessians from the calibration inputs as the already-quantized layers before it
/// produce them, as GPTQ's reference does; false takes every Hessian from the float model in one pass</param>
public sealed record GptqOptions(double Damping = 0.01, int BlockSize = 128, bool ActOrder = false, bool Sequential = false);

/// <summary>
/// GPTQ (Frantar et al., 2022): quantizes a weight matrix column by column and spreads each column's rounding error
/// over the columns not yet quantized, weighted by the inverse Hessian of the layer's inputs, so the layer's
/// output on the calibration data changes as little as possible. Uses the Cholesky form of the inverse Hessian and
/// lazy batch updates; the rounding itself is the format's own (<see cref="IColumnRounder"/>).
/// </summary>
public static class Gptq
{
    /// <summary>
    /// The inverse-Hessian factor GPTQ walks: U upper triangular with Uᵀ U = (H + λI)⁻¹. Computed once per layer
    /// input and shared by the weights that read it (q, k and v; gate and up). Dead inputs (zero diagonal) get a
    /// unit diagonal. <paramref name="order"/> is the column order (null = natural).
    /// </summary>
    public static double[] InverseHessianFactor(double[] hessian, int n, double damping, int[]? order, out bool[] dead)
    {
        var h = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                h[(long)i * n + j] = hessian[(long)(order?[i] ?? i) * n + (order?[j] ?? j)];
        dead = new bool[n];
        double mean = 0;
        for (int i = 0; i < n; i++)
        {
            if (h[(long)i * n + i] == 0) { dead[i] = true; h[(long)i * n + i] = 1; }
            mean += h[(long)i * n + i];
        }
        double lambda = damping * mean / n;
        for (int i = 0; i < n; i++) h[(long)i * n + i] += lambda;
        // H = R Rᵀ with R upper (Cholesky of the index-reversed matrix), then (H)⁻¹ = (R⁻¹)ᵀ R⁻¹, so U = R⁻¹.
        var reversed = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                reversed[(long)i * n + j] = h[(long)(n - 1 - i) * n + (n - 1 - j)];
        DenseLinearAlgebra.CholeskyInPlace(reversed, n);
        var r = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                r[(long)i * n + j] = reversed[(long)(n - 1 - i) * n + (n - 1 - j)];
        return DenseLinearAlgebra.InvertUpperTriangular(r, n);
    }

    /// <summary>The column order for act-order: decreasing Hessian diagonal.</summary>
    public static int[] ActOrder(double[] hessian, int n) =>
        Enumerable.Range(0, n).OrderByDescending(i => hessian[(long)i * n + i]).ThenBy(i => i).ToArray();

    /// <summary>
    /// Quantizes <paramref name="weights"/> (rows × columns, row-major, modified in place into the chosen values)
    /// with the factor from <see cref="InverseHessianFactor"/> (computed with the same <paramref name="order"/>).
    /// </summary>
    public static void Quantize(float[] weights, int rows, int columns, double[] factor, bool[] dead, int[]? order, IColumnRounder rounder,
        GptqOptions options, CancellationToken cancellation = default)
    {
        int n = columns, g = rounder.GroupSize;
        if (n % g != 0) throw new AnyBitException($"rows of {n} are not a multiple of the group of {g}");
        // Work on columns in processing order: W[:, p] = weights[:, order[p]].
        int Col(int p) => order?[p] ?? p;
        for (int p = 0; p < n; p++)
            if (dead[p])
                for (int r = 0; r < rows; r++) weights[(long)r * n + Col(p)] = 0;
        if (order is not null)
            Parallel.For(0, rows, r =>
            {
                for (int group = 0; group < n / g; group++) rounder.Fit(r, group, weights.AsSpan((int)((long)r * n + group * g), g));
            });

        var w = new float[(long)rows * n];
        Parallel.For(0, rows, r => { for (int p = 0; p < n; p++) w[(long)r * n + p] = weights[(long)r * n + Col(p)]; });
        int block = Math.Max(1, options.BlockSize);
        var errors = new float[(long)rows * block];
        for (int i1 = 0; i1 < n; i1 += block)
        {
            cancellation.ThrowIfCancellationRequested();
            int i2 = Math.Min(n, i1 + block), count = i2 - i1;
            Parallel.For(0, rows, r =>
            {
                long row = (long)r * n;
                for (int i = i1; i < i2; i++)
                {
                    int column = Col(i);
                    if (order is null && column % g == 0)
                    {
                        // Dynamic groups: parameters from the group's current (already error-corrected) values.
                        rounder.Fit(r, column / g, w.AsSpan((int)(row + i), g));
                    }
                    float value = w[row + i];
                    float q = rounder.Round(r, column, value);
                    double d = factor[(long)i * n + i];
                    float err = (float)((value - q) / d);
                    w[row + i] = q;
                    for (int j = i + 1; j < i2; j++) w[row + j] -= (float)(err * factor[(long)i * n + j]);
                    errors[(long)r * block + (i - i1)] = err;
                }
                // Lazy batch update of the columns after this block.
                for (int j = i2; j < n; j++)
                {
                    double sum = 0;
                    for (int i = 0; i < count; i++) sum += errors[(long)r * block + i] * factor[(long)(i1 + i) * n + j];
                    w[row + j] -= (float)sum;
                }
            });
        }
        Parallel.For(0, rows, r => { for (int p = 0; p < n; p++) weights[(long)r * n + Col(p)] = w[(long)r * n + p]; });
    }
}
