using AnyBit.Inference;

namespace AnyBit.Kernels.Attention;

/// <summary>
/// Causal attention of a chunk's queries on a compressed KV cache (<see cref="KvCache"/>), FlashAttention-style:
/// work items are (block of up to <see cref="RowBlock"/> rows of one sequence, KV head, span of the context). An item
/// decodes each tile of <see cref="TileSize"/> key and value rows once, by the cache format's reference dequantizer,
/// and folds it into the online-softmax state of every query it serves (the block's rows × the KV head's query heads,
/// <see cref="FlashAttention.Tile"/>), so a quantized row is decoded once per block, never into a full-precision
/// copy of the cache. With few items (decoding one token) the context is split into spans across the workers and
/// the spans' states merged at the end (split-K).
/// </summary>
/// <remarks>
/// Float against decoded tiles rather than integer products with quantized queries: the decode of a 32-row tile is
/// shared by every query of the block and both query heads of a group, so for prompts it is a small part of the
/// work; the integer path is left for the speed slice (docs/kv-cache.md).
/// </remarks>
internal sealed unsafe class KvAttention : IParallelWork, IDisposable
{
    /// <summary>Rows of one sequence sharing an item's decoded tiles.</summary>
    public const int RowBlock = 32;

    private readonly int _heads, _kvHeads, _headDim, _group, _maxRows, _stateCapacity, _stateLength;
    private readonly NativeBuffer _states;   // (row, head, split, state) — FlashAttention's state per query and span
    private readonly NativeBuffer[] _scratch; // per worker: 4 tiles (K low/high, V low/high), scores, 2 decoded token blocks
    private readonly int _tileFloats, _blockFloats;
    private readonly int[] _lo, _hi, _keyBoundary, _valueBoundary, _blockStart; // per row; row blocks
    private readonly KvCache[] _caches;

    // Set for one Run.
    private int _layer, _rows, _blocks, _splits, _window;
    private float _scale, _softCap;
    private float* _query, _output, _sinks;

    /// <summary>Scratch for up to maxRows rows; tileSize positions per tile (at least a token block of the cache types it
    /// serves, <see cref="TileFor"/>), blockScratch floats for a decoded token block.</summary>
    public KvAttention(int heads, int kvHeads, int headDim, int maxRows, int workers, int tileSize, int blockScratch)
    {
        _heads = heads; _kvHeads = kvHeads; _headDim = headDim; _group = heads / kvHeads; _maxRows = Math.Max(1, maxRows);
        TileSize = tileSize;
        _stateLength = FlashAttention.StateLength(headDim);
        _stateCapacity = Math.Max(_maxRows, 32); // rows × splits
        _states = new NativeBuffer((long)_stateCapacity * heads * _stateLength);
        _tileFloats = tileSize * headDim;
        _blockFloats = blockScratch;
        _scratch = Enumerable.Range(0, Math.Max(1, workers)).Select(_ => new NativeBuffer(4L * _tileFloats + tileSize + 2L * blockScratch)).ToArray();
        _lo = new int[_maxRows]; _hi = new int[_maxRows]; _keyBoundary = new int[_maxRows]; _valueBoundary = new int[_maxRows];
        _blockStart = new int[_maxRows + 1];
        _caches = new KvCache[_maxRows];
    }

    /// <summary>Positions per tile.</summary>
    public int TileSize { get; }

    /// <summary>The tile a cache needs: 32 positions, or a whole token block when that is longer.</summary>
    /// <remarks>Longer tiles (128 positions) measured no faster (docs/kv-cache.md, Measured and dropped), and short
    /// ones keep each worker's four tiles small.</remarks>
    public static int TileFor(KvCacheOptions options) => Math.Max(32, Math.Max(options.Key.TokenBlock, options.Value.TokenBlock));

    /// <summary>
    /// Attention of <paramref name="rows"/> rows in layer <paramref name="layer"/>: row r is the query of
    /// <paramref name="caches"/>[r]'s sequence at <paramref name="positions"/>[r], whose own key and value are
    /// already in that cache (<see cref="KvCache.BeginChunk"/> called). Queries and outputs are (row, head, head_dim);
    /// sinks are per-head sink logits (gpt-oss) or null; window is the layer's sliding window (0 for none).
    /// </summary>
    public void Run(WorkerPool pool, int layer, int rows, float* query, float* output, ReadOnlySpan<KvCache> caches, ReadOnlySpan<int> positions,
        float scale, float softCap, float* sinks, int window)
    {
        if (rows > _maxRows) throw new ArgumentException($"{rows} rows exceed the {_maxRows} this attention was made for", nameof(rows));
        _layer = layer; _rows = rows; _query = query; _output = output; _scale = scale; _softCap = softCap; _sinks = sinks; _window = window;
        _blocks = 0;
        long tiles = 0;
        for (int r = 0; r < rows; r++)
        {
            var cache = caches[r];
            int pos = positions[r];
            _caches[r] = cache;
            _hi[r] = pos + 1;
            _lo[r] = window > 0 ? Math.Max(0, pos - window + 1) : 0;
            _keyBoundary[r] = cache.Keys.QuantizedBefore(pos + 1);
            _valueBoundary[r] = cache.Values.QuantizedBefore(pos + 1);
            if (r == 0 || cache != _caches[r - 1] || r - _blockStart[_blocks - 1] == RowBlock) _blockStart[_blocks++] = r;
            tiles += (_hi[r] - _lo[r] + TileSize - 1) / TileSize;
        }
        _blockStart[_blocks] = rows;
        // Split the context when the blocks alone leave workers idle, and only where a span keeps a few tiles.
        int items = _blocks * _kvHeads, target = 2 * pool.WorkerCount;
        _splits = items >= target ? 1 : (int)Math.Clamp(Math.Min((target + items - 1) / items, tiles / Math.Max(1, rows) / 4), 1, _stateCapacity / rows);
        Array.Clear(_caches, rows, _maxRows - rows);
        pool.Run(this, items * _splits);
        if (_splits > 1)
            for (int r = 0; r < rows; r++)
                for (int h = 0; h < _heads; h++) Finish(r, h);
        Array.Clear(_caches, 0, rows);
    }

    private float* State(int row, int head, int split) => _states.Pointer + (((long)row * _heads + head) * _splits + split) * _stateLength;

    public void Execute(int item, int worker)
    {
        int b = item / (_kvHeads * _splits), rest = item % (_kvHeads * _splits);
        int kvh = rest / _splits, split = rest % _splits;
        int r0 = _blockStart[b], r1 = _blockStart[b + 1];
        var cache = _caches[r0];
        int lo = int.MaxValue, hi = 0;
        for (int r = r0; r < r1; r++) { lo = Math.Min(lo, _lo[r]); hi = Math.Max(hi, _hi[r]); }
        int T = TileSize, firstTile = lo / T, tiles = (hi + T - 1) / T - firstTile;
        int tileFrom = firstTile + (int)((long)tiles * split / _splits), tileTo = firstTile + (int)((long)tiles * (split + 1) / _splits);

        for (int r = r0; r < r1; r++)
            for (int h = kvh * _group; h < (kvh + 1) * _group; h++) FlashAttention.Begin(State(r, h, split), _headDim);

        float* scratch = _scratch[worker].Pointer;
        float* kLow = scratch, kHigh = kLow + _tileFloats, vLow = kHigh + _tileFloats, vHigh = vLow + _tileFloats;
        float* scores = vHigh + _tileFloats, kBlock = scores + T, vBlock = kBlock + _blockFloats;
        for (int tile = tileFrom; tile < tileTo; tile++)
        {
            int j0 = tile * T, count = Math.Min(T, hi - j0);
            float* keysLow = TileRows(cache.Keys, _keyBoundary, kvh, r0, r1, j0, count, kLow, kBlock, out float* keysHigh, kHigh);
            float* valuesLow = TileRows(cache.Values, _valueBoundary, kvh, r0, r1, j0, count, vLow, vBlock, out float* valuesHigh, vHigh);
            for (int r = r0; r < r1; r++)
            {
                int from = Math.Max(_lo[r], j0) - j0, to = Math.Min(_hi[r], j0 + count) - j0;
                if (from >= to) continue;
                int keySplit = Math.Clamp(_keyBoundary[r] - j0, 0, count), valueSplit = Math.Clamp(_valueBoundary[r] - j0, 0, count);
                for (int h = kvh * _group; h < (kvh + 1) * _group; h++)
                    FlashAttention.Tile(_query + ((long)r * _heads + h) * _headDim, _headDim, _scale, _softCap,
                        keysLow, keysHigh, keySplit, valuesLow, valuesHigh, valueSplit, from, to, scores, State(r, h, split));
            }
        }
        if (_splits == 1)
            for (int r = r0; r < r1; r++)
                for (int h = kvh * _group; h < (kvh + 1) * _group; h++) Finish(r, h);
    }

    /// <summary>
    /// A tile's rows in the two forms its queries may read: the first with every position a query of the block reads
    /// quantized decoded (below the largest boundary), the second float32 from the smallest boundary a query reads
    /// float32 at. Usually all queries agree and both are the same rows.
    /// </summary>
    private float* TileRows(KvStore store, int[] boundary, int kvh, int r0, int r1, int j0, int count, float* low, float* block, out float* highRows, float* high)
    {
        int maxBoundary = 0, minFloat = int.MaxValue;
        for (int r = r0; r < r1; r++)
        {
            maxBoundary = Math.Max(maxBoundary, boundary[r]);
            // This query reads float32 rows of the tile: those from its boundary to its end.
            if (boundary[r] < Math.Min(_hi[r], j0 + count)) minFloat = Math.Min(minFloat, boundary[r]);
        }
        float* lowRows = store.Fill(_layer, kvh, j0, count, maxBoundary, low, block);
        highRows = minFloat == int.MaxValue || maxBoundary <= j0 || minFloat >= maxBoundary ? lowRows
            : store.Fill(_layer, kvh, j0, count, minFloat, high, block);
        return lowRows;
    }

    private void Finish(int row, int head)
    {
        float* o = _output + ((long)row * _heads + head) * _headDim;
        FlashAttention.Merge(State(row, head, 0), _splits, _stateLength, _headDim, _sinks is null ? float.NegativeInfinity : _sinks[head], o);
        _caches[row].FinishOutput(_layer, head / _group, new Span<float>(o, _headDim));
    }

    /// <summary>
    /// The scalar definition the tiles are tested against: one query of <paramref name="cache"/> at
    /// <paramref name="position"/>, every position it attends to materialized in the form it reads (the format's
    /// reference dequantization below the boundary, float32 above), then <see cref="AttentionKernel.HeadReference"/>
    /// (double sums) and the value rotation undone. Queries are expected already rotated, as the session passes them.
    /// </summary>
    public static void Reference(KvCache cache, int layer, int kvHead, int position, float* query, float scale, float softCap, float sink,
        int window, float* output)
    {
        int hd = cache.HeadDim, lo = window > 0 ? Math.Max(0, position - window + 1) : 0, count = position + 1 - lo;
        var keys = new float[(long)count * hd];
        var values = new float[(long)count * hd];
        var row = new float[hd];
        var block = new float[hd * Math.Max(cache.Keys.Type.TokenBlock, cache.Values.Type.TokenBlock)];
        fixed (float* k = keys, v = values, pr = row, pb = block)
        {
            for (int j = lo; j <= position; j++)
            {
                float* src = cache.Keys.Fill(layer, kvHead, j, 1, cache.Keys.QuantizedBefore(position + 1), pr, pb);
                new ReadOnlySpan<float>(src, hd).CopyTo(keys.AsSpan((j - lo) * hd, hd));
                src = cache.Values.Fill(layer, kvHead, j, 1, cache.Values.QuantizedBefore(position + 1), pr, pb);
                new ReadOnlySpan<float>(src, hd).CopyTo(values.AsSpan((j - lo) * hd, hd));
            }
            var scores = new float[count];
            fixed (float* s = scores) AttentionKernel.HeadReference(query, k, v, hd, count, scale, s, output, softCap, sink);
        }
        cache.FinishOutput(layer, kvHead, new Span<float>(output, hd));
    }

    public void Dispose()
    {
        _states.Dispose();
        foreach (var s in _scratch) s.Dispose();
    }
}
