using System.Numerics.Tensors;
using AnyBit.Inference;
using AnyBit.Kernels;
using AnyBit.Kernels.Attention;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Models;

/// <summary>
/// One sequence being processed: its KV cache, its position, and every scratch buffer the forward pass needs,
/// allocated once so that prefill and decoding allocate nothing per token. Prompts longer than the batch size are
/// processed in chunks.
/// </summary>
public sealed unsafe partial class InferenceSession : IDisposable
{
    private readonly Transformer _model;
    private readonly ModelConfig _c;
    private readonly WorkerPool _pool;
    private readonly RotaryEmbedding _rope;
    private readonly RotaryEmbedding _ropeLocal; // the sliding-window layers' (Gemma 3's local base); _rope itself otherwise
    private readonly int _maxBatch;
    private readonly NativeBuffer? _keyCache, _valueCache; // (layer, kv_head, position, head_dim); null when the cache is compressed
    private readonly KvCache? _kv; // the compressed (or rotated) cache; null for the plain float32 one
    private readonly NativeBuffer _x, _xn, _q, _k, _v, _att, _gate, _up, _logits;
    private readonly NativeBuffer? _reordered; // (token, input) of a weight whose columns are stored permuted; null when none is
    private readonly MatMulF32 _matmul = new();
    private readonly MatMulNarrow _matmulNarrow = new();
    private readonly QuantizedMatMul _quantized;
    private readonly AttentionJob _attention;
    private readonly RowWork _rows;

    internal InferenceSession(Transformer model, int contextSize, int maxBatch, WorkerPool pool, KvCacheOptions? cache = null)
    {
        cache ??= KvCacheOptions.Default;
        _model = model; _c = model.Config; _pool = pool;
        ContextSize = contextSize;
        _maxBatch = Math.Max(1, Math.Min(maxBatch, contextSize));
        _rope = new RotaryEmbedding(_c.Rope, _c.HeadDim, contextSize, model.Weights.RopeFactorsFor(_c, contextSize));
        _ropeLocal = _c.LocalRope is { } local ? new RotaryEmbedding(local, _c.HeadDim, contextSize) : _rope;
        if (cache.IsPlainFloat32)
        {
            cache.Validate(_c, contextSize);
            long cacheSize = (long)_c.NumLayers * _c.NumKvHeads * contextSize * _c.HeadDim;
            _keyCache = new NativeBuffer(cacheSize);
            _valueCache = new NativeBuffer(cacheSize);
        }
        else
        {
            _kv = new KvCache(cache, _c, contextSize);
            _kvAttention = new KvAttention(_c.NumHeads, _c.NumKvHeads, _c.HeadDim, _maxBatch, pool.WorkerCount, KvAttention.TileFor(cache),
                Math.Max(_kv.Keys.BlockScratchLength, _kv.Values.BlockScratchLength));
            _rowCaches = new KvCache[_maxBatch];
            _rowPositionsScratch = new int[_maxBatch];
        }
        CacheOptions = cache;
        int b = _maxBatch, wide = Math.Max(_c.HiddenSize, _c.QueryWidth);
        _x = new NativeBuffer((long)b * _c.HiddenSize);
        _xn = new NativeBuffer((long)b * Math.Max(wide, _c.IntermediateSize));
        _q = new NativeBuffer((long)b * _c.QueryWidth);
        _k = new NativeBuffer((long)b * _c.KvWidth);
        _v = new NativeBuffer((long)b * _c.KvWidth);
        _att = new NativeBuffer((long)b * _c.QueryWidth);
        _gate = new NativeBuffer((long)b * _c.IntermediateSize);
        _up = new NativeBuffer((long)b * _c.IntermediateSize);
        _logits = new NativeBuffer((long)b * _c.VocabSize);
        if (model.Weights.HasInputOrders) _reordered = new NativeBuffer((long)b * Math.Max(wide, _c.IntermediateSize));
        _attention = new AttentionJob(this, pool.WorkerCount, contextSize);
        _rows = new RowWork(this);
        _quantized = new QuantizedMatMul(_maxBatch);
        if (_c.Experts is { } experts) _moe = new ExpertScratch(_c, experts, b);
    }

    public Transformer Model => _model;

    /// <summary>How this session's KV cache stores keys and values.</summary>
    public KvCacheOptions CacheOptions { get; }

    /// <summary>Receives the inputs of every linear layer during <see cref="Forward"/> (calibration); null normally.</summary>
    public IActivationObserver? Observer { get; set; }

    /// <summary>
    /// Calibration of one layer: the forward pass stops after this layer (no logits are computed, the returned ones are
    /// stale). Null runs the whole model.
    /// </summary>
    public int? StopAfterLayer { get; set; }
    public int ContextSize { get; }
    /// <summary>Number of positions already in the KV cache.</summary>
    public int Position { get; private set; }

    /// <summary>Forgets the sequence (the cache is overwritten from position 0).</summary>
    public void Reset() => Rewind(0);

    /// <summary>Rewinds to <paramref name="position"/>, keeping the cache before it.</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > Position) throw new ArgumentOutOfRangeException(nameof(position));
        _kv?.Rewind(position);
        Position = position;
    }

    /// <summary>
    /// The largest position at most <paramref name="position"/> (and <see cref="Position"/>) that <see cref="Rewind"/>
    /// goes back to exactly, so that what follows reads the cache as a fresh run would: any for the float32 cache;
    /// for a quantized cache with a float32 window, only rewinds within the rows it still holds in float32
    /// (<see cref="KvCache.ExactRewindAtMost"/>).
    /// </summary>
    public int ExactRewindAtMost(int position)
    {
        int p = Math.Clamp(position, 0, Position);
        return _kv is null ? p : _kv.ExactRewindAtMost(p);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> through the model at the current position and appends them to the cache.
    /// Writes the logits of every token to <paramref name="allLogits"/> ([tokens, vocab]) when it is non-empty;
    /// returns the logits of the last token (valid until the next call).
    /// </summary>
    public ReadOnlySpan<float> Forward(ReadOnlySpan<int> tokens, Span<float> allLogits = default)
    {
        if (tokens.Length == 0) throw new ArgumentException("no tokens to process", nameof(tokens));
        if (Position + tokens.Length > ContextSize)
            throw new AnyBitException($"{Position + tokens.Length} tokens exceed the context size of {ContextSize}");
        bool wantAll = !allLogits.IsEmpty;
        if (wantAll && allLogits.Length < (long)tokens.Length * _c.VocabSize)
            throw new ArgumentException("allLogits is shorter than tokens × vocab", nameof(allLogits));
        foreach (int t in tokens)
            if ((uint)t >= (uint)_c.VocabSize) throw new AnyBitException($"token id {t} is outside the vocabulary (0..{_c.VocabSize - 1})");

        int lastRows = 0;
        for (int start = 0; start < tokens.Length; start += _maxBatch)
        {
            int n = Math.Min(_maxBatch, tokens.Length - start);
            bool isLast = start + n == tokens.Length;
            int outRows = wantAll ? n : (isLast ? 1 : 0);
            ForwardChunk(tokens.Slice(start, n), outRows);
            if (wantAll) _logits.Slice(0, n * _c.VocabSize).CopyTo(allLogits.Slice(start * _c.VocabSize, n * _c.VocabSize));
            lastRows = outRows;
        }
        _lastRow = lastRows - 1;
        return LastLogits;
    }

    private int _lastRow;

    // While ForwardBatch runs on this session's scratch, row t belongs to _rowOwners[t] at _rowPositions[t]
    // (its KV cache, its position); otherwise every row is this session's, at Position + t.
    private InferenceSession[]? _rowOwners;
    private int[]? _rowPositions;

    private InferenceSession RowOwner(int t) => _rowOwners is null ? this : _rowOwners[t];
    private int RowPosition(int t) => _rowPositions is null ? Position + t : _rowPositions[t];

    /// <summary>
    /// Decodes one token for each of several sequences as one batch, so every weight is read once for all of them
    /// (continuous batching). Each session appends its token to its own cache and gets its own
    /// <see cref="LastLogits"/>. The result per session is the same as its own <see cref="Forward"/> of that token.
    /// </summary>
    public static void ForwardBatch(IReadOnlyList<InferenceSession> sessions, ReadOnlySpan<int> tokens)
    {
        int n = sessions.Count;
        if (n == 0) return;
        if (tokens.Length != n) throw new ArgumentException("one token per session", nameof(tokens));
        if (n == 1) { sessions[0].Forward(tokens); return; }
        var driver = sessions[0];
        if (n > driver._maxBatch) throw new ArgumentException($"{n} sessions exceed the batch size {driver._maxBatch}", nameof(sessions));
        var owners = new InferenceSession[n];
        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            var s = sessions[i];
            if (s._model != driver._model) throw new ArgumentException("sessions of different models cannot share a batch", nameof(sessions));
            if (s.ContextSize != driver.ContextSize) throw new ArgumentException("sessions in a batch must have the same context size", nameof(sessions));
            if (s.CacheOptions != driver.CacheOptions) throw new ArgumentException("sessions in a batch must have the same KV cache types", nameof(sessions));
            for (int j = 0; j < i; j++)
                if (owners[j] == s) throw new ArgumentException("a session appears twice in the batch", nameof(sessions));
            if (s.Position + 1 > s.ContextSize) throw new AnyBitException($"{s.Position + 1} tokens exceed the context size of {s.ContextSize}");
            if ((uint)tokens[i] >= (uint)driver._c.VocabSize) throw new AnyBitException($"token id {tokens[i]} is outside the vocabulary (0..{driver._c.VocabSize - 1})");
            owners[i] = s;
            positions[i] = s.Position;
        }
        driver._rowOwners = owners;
        driver._rowPositions = positions;
        try
        {
            driver.ForwardChunk(tokens, n);
        }
        finally
        {
            driver._rowOwners = null;
            driver._rowPositions = null;
        }
        int vocab = driver._c.VocabSize;
        for (int i = n - 1; i >= 0; i--)
        {
            var s = owners[i];
            // The driver's own row 0 is already in place; copy the others into their sessions.
            if (i > 0) driver._logits.Slice((long)i * vocab, vocab).CopyTo(s._logits.Slice(0, vocab));
            s._lastRow = 0;
            s.Position = positions[i] + 1;
        }
    }

    /// <summary>Logits of the last token processed by <see cref="Forward"/> (valid until the next call).</summary>
    public ReadOnlySpan<float> LastLogits => _logits.Slice((long)_lastRow * _c.VocabSize, _c.VocabSize);

    /// <summary>One chunk of at most maxBatch tokens; computes logits for the last <paramref name="outRows"/> of them.</summary>
    private void ForwardChunk(ReadOnlySpan<int> tokens, int outRows)
    {
        int n = tokens.Length, d = _c.HiddenSize, q = _c.QueryWidth, kv = _c.KvWidth, f = _c.IntermediateSize;
        float eps = _c.RmsNormEps;
        bool int8 = _model.Activations == ActivationMode.Int8PerToken;
        var w = _model.Weights;

        for (int t = 0; t < n; t++)
            w.TokenEmbedding.CopyRow(tokens[t], _x.Slice((long)t * d, d));
        if (_c.Architecture.ScalesEmbedding) TensorPrimitives.Multiply(_x.Slice(0, n * d), MathF.Sqrt(d), _x.Slice(0, n * d));

        for (int l = 0; l < _c.NumLayers; l++)
        {
            var L = w.Layers[l];
            // ---- attention block ----
            ForRows(&AttentionInputRow, l, n);
            Observer?.Observe(l, LinearInput.Attention, _xn.Slice(0, n * d), n, d);
            LinearsOfOneInput(_xn.Pointer, n, d, L.Wq, q, _q.Pointer, L.Wk, kv, _k.Pointer, L.Wv, kv, _v.Pointer);
            ForRows(&PositionRow, l, n);
            _attention.Run(l, n);
            if (L.AttnSubNorm is not null || int8) ForRows(&AttentionOutputRow, l, n);
            Observer?.Observe(l, LinearInput.AttentionOutput, _att.Slice(0, n * q), n, q);
            Linear(L.Wo, _att.Pointer, n, q, d, _xn.Pointer);
            ForRows(&AttentionResidualRow, l, n);

            // ---- feed-forward block ----
            ForRows(&FeedForwardInputRow, l, n);
            Observer?.Observe(l, LinearInput.FeedForward, _xn.Slice(0, n * d), n, d);
            if (L.Experts is { } experts) ExpertFeedForward(experts, l, n);
            else
            {
                LinearsOfOneInput(_xn.Pointer, n, d, L.WGate!, f, _gate.Pointer, L.WUp!, f, _up.Pointer);
                ForRows(&GateRow, l, n);
                Observer?.Observe(l, LinearInput.FeedForwardDown, _gate.Slice(0, n * f), n, f);
                Linear(L.WDown!, _gate.Pointer, n, f, d, _xn.Pointer);
            }
            ForRows(&FeedForwardResidualRow, l, n);
            if (l == StopAfterLayer)
            {
                if (_rowOwners is null) Position += n;
                return;
            }
        }

        if (outRows > 0)
        {
            int first = n - outRows;
            for (int t = first; t < n; t++)
                Ops.RmsNorm(_x.Slice((long)t * d, d), w.OutputNorm.Span, eps, _xn.Slice((long)(t - first) * d, d));
            Observer?.Observe(-1, LinearInput.Output, _xn.Slice(0, outRows * d), outRows, d);
            Linear(w.Output, _xn.Pointer, outRows, d, _c.VocabSize, _logits.Pointer);
            if (_c.FinalLogitSoftcap is float cap) SoftCap(_logits.Slice(0, outRows * _c.VocabSize), cap);
        }
        if (_rowOwners is null) Position += n;
    }

    /// <summary>
    /// Runs <paramref name="row"/> for rows 0..n−1 of layer <paramref name="layer"/>: on the pool for a prompt
    /// (rows are independent: norms, rotations, gates and residuals of different tokens touch different memory),
    /// inline for a single token. Function pointers, so that a decode step allocates nothing.
    /// </summary>
    private void ForRows(delegate*<InferenceSession, int, int, void> row, int layer, int n)
    {
        if (n == 1 || _pool.WorkerCount == 1)
        {
            for (int t = 0; t < n; t++) row(this, layer, t);
            return;
        }
        _rows.Row = row;
        _rows.Layer = layer;
        _pool.Run(_rows, n);
        _rows.Row = null;
    }

    private sealed class RowWork(InferenceSession s) : IParallelWork
    {
        public delegate*<InferenceSession, int, int, void> Row;
        public int Layer;
        public void Execute(int item, int worker) => Row(s, Layer, item);
    }

    private static void AttentionInputRow(InferenceSession s, int l, int t) => NormedInputRow(s, s._model.Weights.Layers[l].AttnNorm, t);
    private static void FeedForwardInputRow(InferenceSession s, int l, int t) => NormedInputRow(s, s._model.Weights.Layers[l].FfnNorm, t);

    /// <summary>Row t of the residual stream, RMS-normed into the linear layers' input (and fake-quantized for BitNet).</summary>
    private static void NormedInputRow(InferenceSession s, NativeBuffer norm, int t)
    {
        int d = s._c.HiddenSize;
        var xn = s._xn.Slice((long)t * d, d);
        Ops.RmsNorm(s._x.Slice((long)t * d, d), norm.Span, s._c.RmsNormEps, xn);
        if (s._model.Activations == ActivationMode.Int8PerToken) Ops.QuantizeActivationsInt8(xn);
    }

    /// <summary>Biases, QK-norms and rotary positions of row t's query and key; its key and value go into the cache.</summary>
    private static void PositionRow(InferenceSession s, int l, int t)
    {
        var c = s._c;
        var L = s._model.Weights.Layers[l];
        int q = c.QueryWidth, kv = c.KvWidth, hd = c.HeadDim;
        float eps = c.RmsNormEps;
        var qt = s._q.Slice((long)t * q, q);
        var kt = s._k.Slice((long)t * kv, kv);
        var vt = s._v.Slice((long)t * kv, kv);
        if (L.Bq is not null) TensorPrimitives.Add(qt, L.Bq.Span, qt);
        if (L.Bk is not null) TensorPrimitives.Add(kt, L.Bk.Span, kt);
        if (L.Bv is not null) TensorPrimitives.Add(vt, L.Bv.Span, vt);
        int pos = s.RowPosition(t);
        var owner = s.RowOwner(t);
        // QK-norm over each whole projection (OLMoE), else per head below (Qwen3).
        bool perHead = !c.Architecture.QkNormAcrossHeads;
        if (!perHead && L.QNorm is not null) Ops.RmsNorm(qt, L.QNorm.Span, eps, qt);
        if (!perHead && L.KNorm is not null) Ops.RmsNorm(kt, L.KNorm.Span, eps, kt);
        var rope = c.IsSlidingLayer(l) ? owner._ropeLocal : owner._rope;
        var cache = owner._kv;
        int group = c.NumHeads / c.NumKvHeads;
        for (int h = 0; h < c.NumHeads; h++)
        {
            var head = qt.Slice(h * hd, hd);
            if (perHead && L.QNorm is not null) Ops.RmsNorm(head, L.QNorm.Span, eps, head);
            rope.Apply(head, pos);
            cache?.PrepareQuery(l, h / group, head);
        }
        for (int h = 0; h < c.NumKvHeads; h++)
        {
            var head = kt.Slice(h * hd, hd);
            if (perHead && L.KNorm is not null) Ops.RmsNorm(head, L.KNorm.Span, eps, head);
            rope.Apply(head, pos);
            owner.StoreKv(l, h, pos, head, vt.Slice(h * hd, hd));
        }
    }

    private static void AttentionOutputRow(InferenceSession s, int l, int t)
    {
        int q = s._c.QueryWidth;
        SubNormed(s, s._att.Slice((long)t * q, q), s._model.Weights.Layers[l].AttnSubNorm);
    }

    /// <summary>BitNet's sub-norm before an output projection (where the model has one), then its int8 fake-quantization.</summary>
    private static void SubNormed(InferenceSession s, Span<float> row, NativeBuffer? subNorm)
    {
        if (subNorm is not null) Ops.RmsNorm(row, subNorm.Span, s._c.RmsNormEps, row);
        if (s._model.Activations == ActivationMode.Int8PerToken) Ops.QuantizeActivationsInt8(row);
    }

    private static void AttentionResidualRow(InferenceSession s, int l, int t)
    {
        int d = s._c.HiddenSize;
        var o = s._xn.Slice((long)t * d, d);
        var bias = s._model.Weights.Layers[l].Bo;
        if (bias is not null) TensorPrimitives.Add(o, bias.Span, o);
        if (s._model.Weights.Layers[l].AttnPostNorm is { } post) Ops.RmsNorm(o, post.Span, s._c.RmsNormEps, o);
        var x = s._x.Slice((long)t * d, d);
        TensorPrimitives.Add(x, o, x);
    }

    private static void GateRow(InferenceSession s, int l, int t)
    {
        int f = s._c.IntermediateSize;
        var g = s._gate.Slice((long)t * f, f);
        var u = s._up.Slice((long)t * f, f);
        if (s._c.Activation == Activation.Silu) Ops.SiluMultiply(g, u);
        else if (s._c.Activation == Activation.GeluTanh) Ops.GeluTanhMultiply(g, u);
        else Ops.ReluSquaredMultiply(g, u);
        SubNormed(s, g, s._model.Weights.Layers[l].FfnSubNorm);
    }

    private static void FeedForwardResidualRow(InferenceSession s, int l, int t)
    {
        int d = s._c.HiddenSize;
        var x = s._x.Slice((long)t * d, d);
        var o = s._xn.Slice((long)t * d, d);
        if (s._model.Weights.Layers[l].FfnPostNorm is { } post) Ops.RmsNorm(o, post.Span, s._c.RmsNormEps, o);
        TensorPrimitives.Add(x, o, x);
    }

    /// <summary>Gemma's soft-cap: v ← cap · tanh(v / cap).</summary>
    private static void SoftCap(Span<float> v, float cap)
    {
        TensorPrimitives.Multiply(v, 1f / cap, v);
        TensorPrimitives.Tanh(v, v);
        TensorPrimitives.Multiply(v, cap, v);
    }

    /// <summary>
    /// y = x·Wᵀ for <paramref name="tokens"/> rows of <paramref name="k"/> inputs, by whichever kernel holds W.
    /// sameInput: x is the previous call's input, unchanged (its int8 codes may be reused).
    /// </summary>
    private void Linear(LinearWeight w, float* x, int tokens, int k, int n, float* y, bool sameInput = false)
    {
        if (w.InputOrder is { } order)
        {
            // Columns stored permuted (GPTQ act-order): the input is gathered to match, a new input for the codes.
            float* gathered = _reordered!.Pointer;
            for (long t = 0; t < tokens; t++)
                for (int i = 0; i < k; i++) gathered[t * k + i] = x[t * k + order[i]];
            x = gathered;
            _quantized.InputChanged();
            sameInput = false;
        }
        if (w.Packed is { } packed)
        {
            _quantized.Run(_pool, x, tokens, packed, y, _model.Kernels, perTokenScale: _model.Activations == ActivationMode.Int8PerToken, sameInput);
            ScaleOutput(w, y, tokens * n);
        }
        else
        {
            // A float weight between two packed ones still starts a new input: codes made before it are stale.
            if (!sameInput) _quantized.InputChanged();
            if (w.Narrow is { } half) _matmulNarrow.Run(_pool, x, tokens, half, y);
            else _matmul.Run(_pool, x, tokens, k, w.F32.Pointer, n, y);
        }
    }

    /// <summary>
    /// Two or three products of one input (Q, K and V; gate and up): where all are packed, one run of the pool
    /// (<see cref="QuantizedMatMul.RunFused"/>: no barrier between them); otherwise one <see cref="Linear"/> each,
    /// the later ones reusing the first's codes.
    /// </summary>
    private void LinearsOfOneInput(float* x, int tokens, int k, LinearWeight w0, int n0, float* y0, LinearWeight w1, int n1, float* y1,
        LinearWeight? w2 = null, int n2 = 0, float* y2 = null)
    {
        int count = w2 is null ? 2 : 3;
        if (w0.Packed is { } p0 && w1.Packed is { } p1 && (w2 is null || w2.Packed is not null)
            && w0.InputOrder is null && w1.InputOrder is null && w2?.InputOrder is null)
        {
            _fused[0] = p0; _fused[1] = p1; _fused[2] = w2?.Packed!;
            Span<nint> outputs = [(nint)y0, (nint)y1, (nint)y2];
            _quantized.RunFused(_pool, x, tokens, _fused.AsSpan(0, count), outputs[..count], _model.Kernels,
                perTokenScale: _model.Activations == ActivationMode.Int8PerToken);
            Array.Clear(_fused);
            ScaleOutput(w0, y0, tokens * n0); ScaleOutput(w1, y1, tokens * n1);
            if (w2 is not null) ScaleOutput(w2, y2, tokens * n2);
            return;
        }
        Linear(w0, x, tokens, k, n0, y0);
        Linear(w1, x, tokens, k, n1, y1, sameInput: true);
        if (w2 is not null) Linear(w2, x, tokens, k, n2, y2, sameInput: true);
    }

    private readonly PackedMatrix[] _fused = new PackedMatrix[3];

    private static void ScaleOutput(LinearWeight w, float* y, int length)
    {
        if (w.OutputScale != 1) TensorPrimitives.Multiply(new ReadOnlySpan<float>(y, length), w.OutputScale, new Span<float>(y, length));
    }

    /// <summary>Stores a new position's key and value heads: in the compressed cache (which rotates and quantizes them
    /// there), or copied into the float32 one.</summary>
    private void StoreKv(int layer, int kvHead, int position, Span<float> key, Span<float> value)
    {
        if (_kv is not null)
        {
            _kv.Write(layer, kvHead, position, key, value);
            return;
        }
        long at = CacheOffset(layer, kvHead, position);
        key.CopyTo(_keyCache!.Slice(at, key.Length));
        value.CopyTo(_valueCache!.Slice(at, value.Length));
    }

    private long CacheOffset(int layer, int kvHead, int pos) =>
        (((long)layer * _c.NumKvHeads + kvHead) * ContextSize + pos) * _c.HeadDim;

    /// <summary>
    /// Causal attention for a chunk: one work item per (token, head), fused in <see cref="AttentionKernel"/>
    /// (f32 scores, max-subtracted softmax, value sum streaming the KV head's cache rows in position order).
    /// </summary>
    private sealed class AttentionJob(InferenceSession s, int workers, int context) : IParallelWork
    {
        private readonly float[][] _scores = Enumerable.Range(0, workers).Select(_ => new float[context]).ToArray();
        private int _layer, _tokens;

        public void Run(int layer, int tokens)
        {
            if (s._kv is not null)
            {
                s.CompressedAttention(layer, tokens);
                return;
            }
            _layer = layer; _tokens = tokens;
            s._pool.Run(this, tokens * s._c.NumHeads);
        }

        public void Execute(int item, int worker)
        {
            var c = s._c;
            int t = item / c.NumHeads, h = item % c.NumHeads, hd = c.HeadDim;
            int kvh = h / (c.NumHeads / c.NumKvHeads);
            int pos = s.RowPosition(t);
            var owner = s.RowOwner(t);
            int lo = c.WindowOf(_layer) is int win ? Math.Max(0, pos - win + 1) : 0;
            long baseOffset = owner.CacheOffset(_layer, kvh, lo);
            float sink = s._model.Weights.Layers[_layer].AttnSinks is { } sinks ? sinks.Pointer[h] : float.NegativeInfinity;
            fixed (float* scores = _scores[worker])
                AttentionKernel.Head(s._q.Pointer + (long)t * c.QueryWidth + h * hd, owner._keyCache!.Pointer + baseOffset,
                    owner._valueCache!.Pointer + baseOffset, hd, pos - lo + 1, c.AttentionScale, scores,
                    s._att.Pointer + (long)t * c.QueryWidth + h * hd, c.AttnLogitSoftcap ?? 0, sink);
        }
    }

    public void Dispose()
    {
        foreach (var b in new[] { _keyCache, _valueCache, _x, _xn, _q, _k, _v, _att, _gate, _up, _logits }) b?.Dispose();
        _kv?.Dispose();
        _kvAttention?.Dispose();
        _reordered?.Dispose();
        _quantized.Dispose();
        _moe?.Dispose();
    }
}
