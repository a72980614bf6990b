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
    // weights from memory, and the prefetchers only reach full speed on long sequential runs (4-group items capped
    // two threads at one thread's bandwidth; see docs/performance.md#threads).
    // Matrices too small for the guided split (Schedule) get ItemsPerWorker equal items per worker.
    private const int ItemsPerWorker = 2;
    private readonly Dictionary<int, QuantizedActivations> _activations = [];
    private readonly int _maxTokens;
    private QuantizedActivations? _x;
    private int _tokens;
    private bool _reference;

    // The matrices of one run of the pool (one, or the products of one input that RunFused joins), and per work
    // item which of them it belongs to and its groups.
    /// <summary>The most matrices <see cref="RunFused"/> joins (Q, K and V; a decode step's chosen experts' gates and ups).</summary>
    public const int MaxFused = 16;
    private readonly PackedMatrix?[] _ms = new PackedMatrix?[MaxFused];
    private readonly GroupKernel?[] _kernels = new GroupKernel?[MaxFused];
    private readonly nint[] _ys = new nint[MaxFused];
    private int[] _which = new int[16], _starts = new int[16], _ends = new int[16];
    private int _items;

    public QuantizedMatMul(int maxTokens) => _maxTokens = maxTokens;

    /// <summary>The most tokens one kernel call takes (<see cref="GroupKernel"/>): the widest prefill tile's.</summary>
    internal const int MaxTokensPerCall = 8;

    /// <summary>
    /// Computes Y = X·Wᵀ (Y is [tokens, n] with n = W.Rows) on <paramref name="pool"/>. With
    /// <paramref name="sameInput"/> the caller promises that X is the X of the previous call, unchanged (Q, K and V
    /// read one normed input, as do gate and up): its int8 codes are then reused where that call made them for the
    /// same activation block size.
    /// </summary>
    public void Run(WorkerPool pool, float* x, int tokens, PackedMatrix w, float* y, KernelMode mode, bool perTokenScale, bool sameInput = false)
    {
        var act = Activations(pool, x, tokens, w, perTokenScale, sameInput);
        _reference = mode == KernelMode.Reference || (w.Lookup is null && w.Kernel is null);
        if (!_reference && w.Lookup is { } table) { _lookup.Run(pool, table, act, tokens, y, w.Rows); return; }
        _x = act; _tokens = tokens; _items = 0;
        Plan(0, w, y, pool.WorkerCount);
        pool.Run(this, _items);
        Release();
    }

    /// <summary>
    /// The products of one input by up to <see cref="MaxFused"/> matrices (Q, K and V; gate and up; the gates and ups
    /// of the experts a token chose), as one run of the pool where
    /// <see cref="CanFuse"/> allows: every matrix's work items in one queue, so that no worker waits for the other
    /// at the end of Q before K starts (a decode step's barriers and end-of-product imbalance, once instead of
    /// three times). The same kernels on the same items as <see cref="Run"/>, so the same bits; where the matrices
    /// cannot be joined, one <see cref="Run"/> each (the second and third with the first's codes).
    /// </summary>
    public void RunFused(WorkerPool pool, float* x, int tokens, ReadOnlySpan<PackedMatrix> ws, ReadOnlySpan<nint> ys, KernelMode mode, bool perTokenScale)
    {
        if (ws.Length != ys.Length || ws.Length is 0 or > MaxFused) throw new ArgumentException($"one output per matrix, one to {MaxFused} matrices");
        if (!CanFuse(ws, mode))
        {
            for (int i = 0; i < ws.Length; i++) Run(pool, x, tokens, ws[i], (float*)ys[i], mode, perTokenScale, sameInput: i > 0);
            return;
        }
        _x = Activations(pool, x, tokens, ws[0], perTokenScale, sameInput: false);
        _reference = false; _tokens = tokens; _items = 0;
        for (int i = 0; i < ws.Length; i++) Plan(i, ws[i], (float*)ys[i], pool.WorkerCount);
        pool.Run(this, _items);
        Release();
    }

    /// <summary>Matrices the fast interleaved kernels run, of one width and activation block (one set of codes).</summary>
    public static bool CanFuse(ReadOnlySpan<PackedMatrix> ws, KernelMode mode)
    {
        if (mode != KernelMode.Fast) return false;
        foreach (var w in ws)
            if (w.Lookup is not null || w.Kernel is null || w.Columns != ws[0].Columns || w.ActivationBlock != ws[0].ActivationBlock) return false;
        return true;
    }

    /// <summary>The int8 codes of X for <paramref name="w"/>'s activation block: made now, or reused (see Run).</summary>
    private QuantizedActivations Activations(WorkerPool pool, float* x, int tokens, PackedMatrix w, bool perTokenScale, bool sameInput)
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
        return act;
    }

    /// <summary>Appends matrix <paramref name="index"/>'s work items (Schedule) to the run.</summary>
    private void Plan(int index, PackedMatrix w, float* y, int workers)
    {
        _ms[index] = w; _ys[index] = (nint)y; _kernels[index] = _reference ? null : w.Kernel;
        int count = Schedule(w.Groups, w.Kind.PairedGroups ? 2 : 1, workers, ref _bounds);
        if (_which.Length < _items + count)
        {
            int size = 2 * (_items + count);
            Array.Resize(ref _which, size); Array.Resize(ref _starts, size); Array.Resize(ref _ends, size);
        }
        for (int i = 0; i < count; i++, _items++)
        {
            _which[_items] = index; _starts[_items] = _bounds[i]; _ends[_items] = _bounds[i + 1];
        }
    }

    private void Release()
    {
        Array.Clear(_ms); Array.Clear(_kernels);
        _x = null;
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
    /// quarter of the matrix. It decoded faster than equal items for most formats (see docs/performance.md#threads).
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
        int which = _which[item];
        var m = _ms[which]!; var x = _x!;
        var kernel = _kernels[which];
        float* y0 = (float*)_ys[which];
        int n = m.Rows;
        int g1 = _ends[item];
        for (int g = _starts[item], span; g < g1; g += span)
        {
            // The fast kernels take two adjacent groups at once (sixteen rows where their kind has such a tile).
            span = _reference || g + 1 >= g1 ? 1 : 2;
            int rows = Math.Min(span * PackedMatrix.GroupRows, m.Rows - g * PackedMatrix.GroupRows);
            for (int t = 0; t < _tokens; )
            {
                float* y = y0 + (long)t * n + g * PackedMatrix.GroupRows;
                if (_reference)
                {
                    for (int r = 0; r < rows; r++) y[r] = ReferenceKernel.Row(m, g * PackedMatrix.GroupRows + r, x, t);
                    t++;
                    continue;
                }
                // Tokens up to eight at a time: each code vector is unpacked once for as many of them as the kind's
                // tile takes (the kernel splits the rest into fours, pairs and singles).
                int count = Math.Min(MaxTokensPerCall, _tokens - t);
                kernel!(m.Group(g), m.SuperBlocks, x.Codes(t), x.Scales(t), x.Sums16(t), x.LaneSums(t), y, rows, count, n);
                t += count;
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
