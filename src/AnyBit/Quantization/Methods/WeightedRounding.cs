namespace AnyBit.Quantization.Methods;

/// <summary>
/// Round-to-nearest with an importance-weighted clip search, as llama.cpp's imatrix quantizers and HQQ-style
/// optimizers do: for each group the range is shrunk by factors 1.0 … 0.6 and the factor whose codes minimize
/// Σ importance_i·(w_i − q_i)² is kept. Outliers may be clipped when that lowers the error the layer's inputs see.
/// </summary>
public static class WeightedRounding
{
    private static readonly float[] Shrink = [1f, 0.975f, 0.95f, 0.925f, 0.9f, 0.875f, 0.85f, 0.8f, 0.75f, 0.7f, 0.65f, 0.6f];

    public static byte[] Quantize(IntFormat format, float[] weights, int rows, int cols, float[] importance)
    {
        int g = format.GroupSize, groups = cols / g;
        var rounder = new IntColumnRounder(format, rows, cols);
        Parallel.For(0, rows, r =>
        {
            var clipped = new float[g];
            for (int group = 0; group < groups; group++)
            {
                var x = weights.AsSpan(r * cols + group * g, g);
                var imp = importance.AsSpan(group * g, g);
                double bestError = double.MaxValue;
                float bestShrink = 1f;
                foreach (float shrink in Shrink)
                {
                    for (int i = 0; i < g; i++) clipped[i] = x[i] * shrink;
                    var (s, z) = format.FitGroup(clipped);
                    double error = 0;
                    for (int i = 0; i < g; i++)
                    {
                        double e = x[i] - format.Value(format.Code(x[i], s, z), s, z);
                        error += (imp[i] + 1e-9) * e * e;
                    }
                    if (error < bestError) { bestError = error; bestShrink = shrink; }
                }
                for (int i = 0; i < g; i++) clipped[i] = x[i] * bestShrink;
                rounder.Fit(r, group, clipped);
                for (int i = 0; i < g; i++) rounder.Round(r, group * g + i, x[i]);
            }
        });
        return rounder.Encode();
    }
}
