namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Y[t, o] = Σ_k X[t, k]·W[o, k] with W a <see cref="PackedMatrix"/> and X float32 rows quantized to int8 first.
/// Work items are runs of 8-row groups, handed to the kernels two at a time; within an item each group meets every
/// token while its bytes are in L1, so prefill reads each weight from memory once per chunk of tokens rather than
/// once per token.
/// </summary>
public sealed unsafe class QuantizedMatMul : IParallelWork, IDisposable
{
    // Each worker gets a few long contiguous runs of groups rather than many short ones: a decode step streams the
    // weights from memory, and the prefetchers only reach full speed on long sequential runs (measured: 4-group
    // items capped two threads at one thread's bandwidth; a few runs per worker nearly doubled it).
    // Matrices too small for the guided split (Schedule) get ItemsPerWorker equal items per worker.
    private const int ItemsPerWorker = 2;
    private readonly Dictionary<int, QuantizedActivations> _activations = [];
    private readonly int _maxTokens;
    private PackedMatrix? _m;
    private QuantizedActivations? _x;
    private float* _y;
    private int _n, _tokens;
    private GroupKernel? _kernel;
    private bool _reference;

    public QuantizedMatMul(int maxTokens) => _maxTokens = maxTokens;

    /// <summary>
    /// Computes Y = X·Wᵀ (Y is [tokens, n] with n = W.Rows) on <paramref name="pool"/>. With
    /// <paramref name="sameInput"/> the caller promises that X is the X of the previous call, unchanged (Q, K and V
    /// read one normed input, as do gate and up): its int8 codes are then reused where that call made them for the
    /// same activation block size.
    /// </summary>
    public void Run(WorkerPool pool, float* x, int tokens, PackedMatrix w, float* y, KernelMode mode, bool perTokenScale, bool sameInput = false)
    {
        if (!_activations.TryGetValue(w.ActivationBlock, out var act) || act.MaxColumns < w.Columns)
        {
            act?.Dispose();
            _activations[w.ActivationBlock] = act = new QuantizedActivations(_maxTokens, Math.Max(w.Columns, act?.MaxColumns ?? 0), w.ActivationBlock);
        }
        if (!sameInput) _input++;
        var made = ((nint)x, tokens, w.Columns, perTokenScale, _input);
        if (act.MadeFrom != made)
        {
            QuantizeActivations(pool, act, x, tokens, w.Columns, perTokenScale);
            act.MadeFrom = made;
        }
        _m = w; _x = act; _y = y; _n = w.Rows; _tokens = tokens;
        _reference = mode == KernelMode.Reference || (w.Lookup is null && (_kernel = w.Kernel) is null);
        if (!_reference && w.Lookup is { } table) _lookup.Run(pool, table, act, tokens, y, w.Rows);
        else pool.Run(this, Schedule(w.Groups, w.Kind.PairedGroups ? 2 : 1, pool.WorkerCount, ref _bounds));
        _m = null; _x = null;
    }

    private readonly BitSerialMatMul _lookup = new();

    // The number of the input being multiplied: a call without sameInput starts a new one, so codes an activation
    // buffer made under an earlier number (see QuantizedActivations.MadeFrom) are never reused.
    private long _input;
    private readonly RowQuantizer _rowQuantizer = new();

    /// <summary>Tells the product that its next sameInput call follows a new input (one it did not see).</summary>
    public void InputChanged() => _input++;

    /// <summary>A prompt's rows are quantized on the pool (one item per row); a single token on this thread.</summary>
    private void QuantizeActivations(WorkerPool pool, QuantizedActivations act, float* x, int tokens, int columns, bool perTokenScale)
    {
        act.Prepare(tokens, columns);
        if (tokens == 1 || pool.WorkerCount == 1)
        {
            for (int t = 0; t < tokens; t++) act.QuantizeRow(x, t, perTokenScale);
            return;
        }
        _rowQuantizer.Set(act, x, perTokenScale);
        pool.Run(_rowQuantizer, tokens);
        _rowQuantizer.Set(null, null, false);
    }

    private sealed class RowQuantizer : IParallelWork
    {
        private QuantizedActivations? _act;
        private float* _x;
        private bool _perToken;

        public void Set(QuantizedActivations? act, float* x, bool perToken) { _act = act; _x = x; _perToken = perToken; }
        public void Execute(int item, int worker) => _act!.QuantizeRow(_x, item, _perToken);
    }

    // The first group of each work item, then the end (Schedule).
    private int[] _bounds = new int[16];

    /// <summary>
    /// Splits the matrix's groups into items (their first groups in bounds) and returns their count. A matrix
    /// large enough is split guided: one long run per worker (three quarters of the rows, for the prefetchers), then
    /// two short items per worker, so that the workers finish within a short item of each other rather than within a
    /// quarter of the matrix. Alternating A/B against equal items (anybit bench tg32, 2 threads, 3 + 2 rounds):
    /// Q4_K_M +12, +6, +6, +21, +1 %; Q4_0 −2, +2, +7 %; TQ2_0 +24, +7 %; Q2_K +5, −3 %; Q8_0 +15, −7 %.
    /// </summary>
    /// <remarks>Items start at a multiple of <paramref name="step"/> (a pair's first group, for paired kinds).</remarks>
    internal static int Schedule(int groups, int step, int workers, ref int[] bounds)
    {
        if (bounds.Length < 4 * workers + 4) bounds = new int[4 * workers + 4];
        int items = 0;
        if (groups >= 8 * workers * step)
        {
            int big = (groups * 3 / 4) / workers / step * step;
            for (int i = 0; i < workers; i++) bounds[items++] = i * big;
            int rest = groups - workers * big, small = ((rest + 2 * workers - 1) / (2 * workers) + step - 1) / step * step; // at most 2 per worker
            for (int g = workers * big; g < groups; g += small) bounds[items++] = g;
        }
        else
        {
            int per = Math.Max(1, (groups + workers * ItemsPerWorker - 1) / (workers * ItemsPerWorker));
            per = (per + step - 1) / step * step;
            for (int g = 0; g < groups; g += per) bounds[items++] = g;
        }
        bounds[items] = groups;
        return items;
    }

    public void Execute(int item, int worker)
    {
        var m = _m!; var x = _x!;
        int g1 = _bounds[item + 1];
        for (int g = _bounds[item], span; g < g1; g += span)
        {
            // The fast kernels take two adjacent groups at once (sixteen rows where their kind has such a tile).
            span = _reference || g + 1 >= g1 ? 1 : 2;
            int rows = Math.Min(span * PackedMatrix.GroupRows, m.Rows - g * PackedMatrix.GroupRows);
            for (int t = 0; t < _tokens; )
            {
                float* y = _y + (long)t * _n + g * PackedMatrix.GroupRows;
                if (_reference)
                {
                    for (int r = 0; r < rows; r++) y[r] = ReferenceKernel.Row(m, g * PackedMatrix.GroupRows + r, x, t);
                    t++;
                    continue;
                }
                // Tokens four at a time: each code vector is unpacked once for all of them (the kernel splits
                // what its kind cannot tile by four into pairs).
                int n = Math.Min(4, _tokens - t);
                _kernel!(m.Group(g), m.SuperBlocks, x.Codes(t), x.Scales(t), x.Sums16(t), y, rows, n, _n);
                t += n;
            }
        }
    }

    public void Dispose()
    {
        _lookup.Dispose();
        foreach (var a in _activations.Values) a.Dispose();
        _activations.Clear();
    }
}
