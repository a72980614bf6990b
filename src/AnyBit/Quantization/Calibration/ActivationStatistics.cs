using AnyBit.Kernels;
using AnyBit.Models;

namespace AnyBit.Quantization.Calibration;

/// <summary>
/// Statistics of one linear-layer input over the calibration tokens: the Hessian proxy H = Σ x xᵀ (GPTQ), the
/// per-channel mean of x² (llama.cpp's importance matrix) and mean |x| (AWQ), and a sample of rows (AWQ's loss).
/// Nothing per token is kept beyond the sample, so calibration memory does not grow with the number of tokens.
/// </summary>
public sealed class InputStatistics(int width, int sampleRows)
{
    public int Width { get; } = width;
    public long Tokens { get; private set; }
    /// <summary>Σ x xᵀ, row-major width × width (double: sums over many tokens).</summary>
    public double[] Hessian { get; } = new double[(long)width * width];
    public double[] SumSquares { get; } = new double[width];
    public double[] SumAbs { get; } = new double[width];
    public List<float[]> Samples { get; } = new();
    private readonly int _sampleRows = sampleRows;

    internal unsafe void Add(ReadOnlySpan<float> rows, int tokens, float[] transposeScratch, float[] productScratch, WorkerPool pool, MatMulF32 matmul)
    {
        int w = Width;
        // Xᵀ (width × tokens) so that one GEMM gives Xᵀ·X; partial sums of one chunk stay in float, then go to double.
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < w; i++)
            {
                float v = rows[t * w + i];
                transposeScratch[(long)i * tokens + t] = v;
                SumSquares[i] += (double)v * v;
                SumAbs[i] += MathF.Abs(v);
            }
        fixed (float* xt = transposeScratch)
        fixed (float* product = productScratch)
            matmul.Run(pool, xt, w, tokens, xt, w, product);
        for (long i = 0; i < (long)w * w; i++) Hessian[i] += productScratch[i];
        // Every 8th token joins the sample (spread over the windows) until the sample is full.
        for (int t = 0; t < tokens && Samples.Count < _sampleRows; t += 8) Samples.Add(rows.Slice(t * w, w).ToArray());
        Tokens += tokens;
    }

    /// <summary>Mean of x² per channel: the importance of each input channel.</summary>
    public float[] Importance() => SumSquares.Select(s => (float)(s / Math.Max(1, Tokens))).ToArray();

    /// <summary>Mean |x| per channel.</summary>
    public float[] MeanAbs() => SumAbs.Select(s => (float)(s / Math.Max(1, Tokens))).ToArray();
}

/// <summary>
/// Collects <see cref="InputStatistics"/> for every (layer, input) while calibration text runs through the model, and
/// in Mixture-of-Experts layers for every (layer, input, expert) over the tokens routed to that expert: each expert is
/// calibrated on its own tokens, and their count is its routing frequency.
/// </summary>
public sealed class ActivationStatistics : IActivationObserver
{
    private const int Dense = -1;
    private readonly Dictionary<(int, LinearInput, int), InputStatistics> _stats = new();
    private readonly MatMulF32 _matmul = new();
    private readonly WorkerPool _pool;
    private readonly int _sampleRows;
    private float[] _transpose = [], _product = [];

    public ActivationStatistics(WorkerPool pool, int sampleRows = 512)
    {
        _pool = pool;
        _sampleRows = sampleRows;
    }

    public InputStatistics For(int layer, LinearInput input) =>
        _stats.TryGetValue((layer, input, Dense), out var s) ? s : throw new AnyBitException($"no calibration statistics for layer {layer} {input}");

    /// <summary>One expert's statistics, over the tokens routed to it; null when calibration never routed a token to it.</summary>
    public InputStatistics? ForExpert(int layer, LinearInput input, int expert) =>
        _stats.TryGetValue((layer, input, expert), out var s) && s.Tokens > 0 ? s : null;

    /// <summary>The tokens calibration routed to <paramref name="expert"/> of <paramref name="layer"/>.</summary>
    public long RoutedTokens(int layer, int expert) => ForExpert(layer, LinearInput.FeedForward, expert)?.Tokens ?? 0;

    /// <summary>The statistics of the dense inputs (the experts' are in <see cref="ForExpert"/>).</summary>
    public IEnumerable<((int Layer, LinearInput Input) Key, InputStatistics Stats)> All =>
        _stats.Where(kv => kv.Key.Item3 == Dense).Select(kv => ((kv.Key.Item1, kv.Key.Item2), kv.Value));

    /// <summary>When set, only this layer's inputs are recorded (−1: the output head's).</summary>
    public int? Layer { get; init; }

    public void Observe(int layer, LinearInput input, ReadOnlySpan<float> rows, int tokens, int width) =>
        Add((layer, input, Dense), rows, tokens, width);

    public void ObserveExpert(int layer, LinearInput input, int expert, ReadOnlySpan<float> rows, int tokens, int width) =>
        Add((layer, input, expert), rows, tokens, width);

    private void Add((int Layer, LinearInput Input, int Expert) key, ReadOnlySpan<float> rows, int tokens, int width)
    {
        if (Layer is int only && key.Layer != only) return;
        if (!_stats.TryGetValue(key, out var s)) _stats[key] = s = new InputStatistics(width, _sampleRows);
        if (_transpose.Length < (long)tokens * width) _transpose = new float[(long)tokens * width];
        if (_product.Length < (long)width * width) _product = new float[(long)width * width];
        s.Add(rows, tokens, _transpose, _product, _pool, _matmul);
    }

    /// <summary>
    /// Runs the calibration windows through <paramref name="model"/> and returns the statistics: of every layer, or
    /// only of <paramref name="layer"/> (the pass then stops after it; −1 is the output head).
    /// </summary>
    public static ActivationStatistics Collect(Transformer model, IReadOnlyList<int[]> windows, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellation = default, int? layer = null)
    {
        var stats = new ActivationStatistics(WorkerPool.Shared) { Layer = layer };
        int longest = windows.Max(w => w.Length);
        using var session = model.CreateSession(longest);
        session.Observer = stats;
        if (layer >= 0) session.StopAfterLayer = layer;
        // All logits are asked for so that the output head sees every position (its input is observed then).
        var logits = new float[(long)longest * model.Config.VocabSize];
        for (int i = 0; i < windows.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            session.Reset();
            session.Forward(windows[i], logits.AsSpan(0, windows[i].Length * model.Config.VocabSize));
            progress?.Report((i + 1, windows.Count));
        }
        return stats;
    }
}
