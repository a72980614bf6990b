namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Y[t, o] = Σ_k X[t, k]·W[o, k] with W a <see cref="PackedMatrix"/> and X float32 rows quantized to int8 first.
/// Work items are runs of 8-row groups; within an item each group meets every token while its bytes are in L1,
/// so prefill reads each weight from memory once per chunk of tokens rather than once per token.
/// </summary>
public sealed unsafe class QuantizedMatMul : IParallelWork, IDisposable
{
    // Each worker gets a few long contiguous runs of groups rather than many short ones: a decode step streams the
    // weights from memory, and the prefetchers only reach full speed on long sequential runs (measured: 4-group
    // items capped two threads at one thread's bandwidth; a few runs per worker nearly doubled it).
    // (Software prefetching on top made no measurable difference.)
    private const int ItemsPerWorker = 2;
    private int _groupsPerItem;
    private readonly Dictionary<int, QuantizedActivations> _activations = [];
    private readonly int _maxTokens;
    private PackedMatrix? _m;
    private QuantizedActivations? _x;
    private float* _y;
    private int _n, _tokens;
    private GroupKernel? _kernel;
    private bool _reference;

    public QuantizedMatMul(int maxTokens) => _maxTokens = maxTokens;

    /// <summary>Computes Y = X·Wᵀ (Y is [tokens, n] with n = W.Rows) on <paramref name="pool"/>.</summary>
    public void Run(WorkerPool pool, float* x, int tokens, PackedMatrix w, float* y, KernelMode mode, bool perTokenScale)
    {
        if (!_activations.TryGetValue(w.ActivationBlock, out var act) || act.MaxColumns < w.Columns)
        {
            act?.Dispose();
            _activations[w.ActivationBlock] = act = new QuantizedActivations(_maxTokens, Math.Max(w.Columns, act?.MaxColumns ?? 0), w.ActivationBlock);
        }
        act.Quantize(x, tokens, w.Columns, perTokenScale);
        _m = w; _x = act; _y = y; _n = w.Rows; _tokens = tokens;
        _reference = mode == KernelMode.Reference || (_kernel = w.Kernel) is null;
        _groupsPerItem = Math.Max(1, (w.Groups + pool.WorkerCount * ItemsPerWorker - 1) / (pool.WorkerCount * ItemsPerWorker));
        pool.Run(this, (w.Groups + _groupsPerItem - 1) / _groupsPerItem);
        _m = null; _x = null;
    }

    public void Execute(int item, int worker)
    {
        var m = _m!; var x = _x!;
        int g1 = Math.Min(m.Groups, (item + 1) * _groupsPerItem);
        for (int g = item * _groupsPerItem; g < g1; g++)
        {
            int rows = Math.Min(PackedMatrix.GroupRows, m.Rows - g * PackedMatrix.GroupRows);
            for (int t = 0; t < _tokens; )
            {
                float* y = _y + (long)t * _n + g * PackedMatrix.GroupRows;
                if (_reference)
                {
                    for (int r = 0; r < rows; r++) y[r] = ReferenceKernel.Row(m, g * PackedMatrix.GroupRows + r, x, t);
                    t++;
                    continue;
                }
                // Tokens two at a time: each code vector is unpacked once for both.
                int n = Math.Min(2, _tokens - t);
                _kernel!(m.Group(g), m.SuperBlocks, x.Codes(t), x.Scales(t), x.Sums16(t), y, rows, n, _n);
                t += n;
            }
        }
    }

    public void Dispose()
    {
        foreach (var a in _activations.Values) a.Dispose();
        _activations.Clear();
    }
}
