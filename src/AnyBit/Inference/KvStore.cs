using AnyBit.Kernels;
using AnyBit.Kernels.Attention;
using AnyBit.Quantization;

namespace AnyBit.Inference;

/// <summary>
/// One side (keys or values) of a sequence's KV cache: its quantized positions, packed by the cache type's format,
/// and its float32 rows — the whole context for a float32 type, else a ring of the newest positions (the window and
/// a token block still filling). While a layer processes a chunk, the chunk's own rows are read where the forward
/// pass computed them (<see cref="BeginChunk"/>), and those still in the window afterwards join the ring
/// (<see cref="EndChunk"/>), so the ring does not grow with the chunk. Positions are quantized once they leave the
/// window (<see cref="Advance"/>); types grouped along the head without a window are quantized as they are written.
/// Attention reads tiles of rows through <see cref="Fill"/>: decoded below a boundary, float32 above it.
/// </summary>
internal sealed unsafe class KvStore : IDisposable
{
    private readonly KvCacheType _type;
    private readonly TensorFormat _row;        // the format of one stored row (a head, or a channel's token block)
    private readonly KvRowDecoder.Decoder? _decoder; // the row format's vectorized decoder; null: the reference's
    private readonly int _layers, _kvHeads, _headDim, _context, _window, _block;
    private readonly int _rowBytes;            // bytes of one stored row
    private readonly int _rowLength;           // values of one stored row: the head dimension, or the token block
    private readonly int _blocksPerHead;       // token blocks per (layer, kv head) (:tokens types)
    private readonly long _packedPerHead;      // bytes of one (layer, kv head)
    private readonly NativeBuffer? _packedBuffer;
    private readonly byte* _packed;            // (layer, kv_head, position, rowBytes), or for :tokens (layer, kv_head, token_block, head_dim, rowBytes)
    private readonly NativeBuffer? _float;     // (layer, kv_head, slot, head_dim), slot = position mod FloatCapacity
    private readonly int[] _quantized;         // per layer: positions [0, n) hold their quantized form (ring-fed stores)
    private readonly int[] _written;           // per layer: positions [0, n) have been written
    private int _chunkFirst, _chunkCount, _chunkStride; // the chunk being processed: its positions and rows
    private float* _chunkRows;                 // (position − first, stride): kv head h's row at + h·head_dim

    public KvStore(KvCacheType type, int layers, int kvHeads, int headDim, int context, int window)
    {
        _type = type; _layers = layers; _kvHeads = kvHeads; _headDim = headDim; _context = context; _window = window;
        _block = type.TokenBlock;
        _row = type.RowFormat(headDim);
        _decoder = KvRowDecoder.For(_row);
        _rowLength = type.RowLength(headDim);
        _rowBytes = (int)_row.ByteSize(_rowLength);
        _blocksPerHead = (context + _block - 1) / _block;
        FloatCapacity = FloatPositions(type, window, context);
        if (!type.IsFloat32)
        {
            _packedPerHead = (long)PackedRowsPerHead(type, headDim, context) * _rowBytes;
            long bytes = (long)layers * kvHeads * _packedPerHead;
            _packedBuffer = new NativeBuffer((bytes + 3) / 4); // counted with the other native buffers
            _packed = (byte*)_packedBuffer.Pointer;
        }
        if (FloatCapacity > 0) _float = new NativeBuffer((long)layers * kvHeads * FloatCapacity * headDim);
        _quantized = new int[layers];
        _written = new int[layers];
    }

    public KvCacheType Type => _type;

    /// <summary>Rows of the float32 part per (layer, kv head): the context for float32, 0 when quantized on write.</summary>
    public int FloatCapacity { get; }

    /// <summary>Float32 rows a store keeps per (layer, kv head): between chunks, the positions from Q(n) to n — the
    /// window and a token block still filling, fewer than window + block — which the next chunk's queries read in
    /// float32 and its <see cref="Advance"/> quantizes.</summary>
    public static int FloatPositions(KvCacheType type, int window, int context)
    {
        if (type.IsFloat32) return context;
        if (QuantizesOnWrite(type, window)) return 0;
        return Math.Min(context, window + type.TokenBlock);
    }

    /// <summary>Rows of the quantized part per (layer, kv head): a row per position, or a channel row per token block.</summary>
    public static long PackedRowsPerHead(KvCacheType type, int headDim, int context) =>
        type.AlongTokens ? (long)(context + type.TokenBlock - 1) / type.TokenBlock * headDim : context;

    private static bool QuantizesOnWrite(KvCacheType type, int window) => !type.IsFloat32 && !type.AlongTokens && window == 0;

    /// <summary>
    /// Q(n): the positions a query that sees <paramref name="count"/> positions reads quantized (all below it):
    /// none for float32, those older than the window, rounded down to whole token blocks for <c>:tokens</c>.
    /// </summary>
    public int QuantizedBefore(int count)
    {
        if (_type.IsFloat32) return 0;
        int q = Math.Max(0, count - _window);
        return q - q % _block;
    }

    private float* FloatRow(int layer, int kvHead, int position) =>
        _float!.Pointer + (((long)layer * _kvHeads + kvHead) * FloatCapacity + position % FloatCapacity) * _headDim;

    private byte* PackedRow(int layer, int kvHead, int position) =>
        _packed + ((long)layer * _kvHeads + kvHead) * _packedPerHead + (long)position * _rowBytes;

    private byte* PackedBlock(int layer, int kvHead, int block) =>
        _packed + ((long)layer * _kvHeads + kvHead) * _packedPerHead + (long)block * _headDim * _rowBytes;

    /// <summary>
    /// Stores the head row <paramref name="x"/> (headDim floats) of a new position where it is stored at once: quantized
    /// for types without a window or token block, copied for float32. Other types read it from the chunk
    /// (<see cref="BeginChunk"/>) until <see cref="EndChunk"/>.
    /// </summary>
    public void Write(int layer, int kvHead, int position, ReadOnlySpan<float> x)
    {
        if (_type.IsFloat32) x.CopyTo(new Span<float>(FloatRow(layer, kvHead, position), _headDim));
        else if (_float is null) _row.QuantizeRow(x, new Span<byte>(PackedRow(layer, kvHead, position), _rowBytes));
    }

    /// <summary>
    /// The rows of positions [<paramref name="first"/>, first + <paramref name="count"/>) for the layer being processed:
    /// position first + i, KV head h at <paramref name="rows"/> + i·<paramref name="stride"/> + h·headDim (the forward
    /// pass's own key or value buffer), valid until <see cref="EndChunk"/>.
    /// </summary>
    public void BeginChunk(int first, int count, float* rows, int stride)
    {
        _chunkFirst = first; _chunkCount = count; _chunkRows = rows; _chunkStride = stride;
    }

    /// <summary>After the layer's attention: the chunk's rows that the ring keeps (the newest ones) are copied into it.</summary>
    public void EndChunk(int layer)
    {
        if (_float is not null && !_type.IsFloat32)
        {
            int end = _chunkFirst + _chunkCount;
            for (int j = Math.Max(_chunkFirst, end - FloatCapacity); j < end; j++)
                for (int h = 0; h < _kvHeads; h++)
                    new ReadOnlySpan<float>(ChunkRow(h, j), _headDim).CopyTo(new Span<float>(FloatRow(layer, h, j), _headDim));
        }
        _chunkCount = 0;
        _chunkRows = null;
    }

    private float* ChunkRow(int kvHead, int position) => _chunkRows + (long)(position - _chunkFirst) * _chunkStride + kvHead * _headDim;

    /// <summary>A float32 row of a quantized type: the chunk's own, or the ring's for older positions.</summary>
    private float* NewRow(int layer, int kvHead, int position) =>
        position >= _chunkFirst && position < _chunkFirst + _chunkCount ? ChunkRow(kvHead, position) : FloatRow(layer, kvHead, position);

    /// <summary>
    /// After positions up to <paramref name="count"/> of <paramref name="layer"/> are written: quantizes, from the
    /// float32 ring and the chunk, the positions that have left the window (up to Q(count)), for every KV head.
    /// </summary>
    /// <remarks>Serial: a decode step quantizes at most one row (or one token block) per head; a prompt chunk
    /// quantizes each of its rows once, a small cost beside the chunk's matrix products.</remarks>
    public void Advance(int layer, int count)
    {
        _written[layer] = Math.Max(_written[layer], count);
        if (_type.IsFloat32 || _float is null) return;
        int from = _quantized[layer], to = QuantizedBefore(count);
        if (to <= from) return;
        if (!_type.AlongTokens)
        {
            for (int h = 0; h < _kvHeads; h++)
                for (int j = from; j < to; j++)
                    _row.QuantizeRow(new ReadOnlySpan<float>(NewRow(layer, h, j), _headDim), new Span<byte>(PackedRow(layer, h, j), _rowBytes));
        }
        else
        {
            // A block of G positions becomes headDim channel rows of G values: the ring's rows transposed.
            Span<float> channel = stackalloc float[_block];
            for (int h = 0; h < _kvHeads; h++)
                for (int b = from / _block; b < to / _block; b++)
                {
                    byte* dst = PackedBlock(layer, h, b);
                    for (int c = 0; c < _headDim; c++)
                    {
                        for (int i = 0; i < _block; i++) channel[i] = NewRow(layer, h, b * _block + i)[c];
                        _row.QuantizeRow(channel, new Span<byte>(dst + (long)c * _rowBytes, _rowBytes));
                    }
                }
        }
        _quantized[layer] = to;
    }

    /// <summary>
    /// Forgets positions from <paramref name="position"/> on. A rewind within the float32 rows the ring holds is exact.
    /// Positions further back that the continuation reads in float32 (the window before the new end) were dropped by
    /// the ring once quantized: they are restored from their quantized form, so the continuation reads those few
    /// positions decoded where a fresh run would read them in float32. Token blocks reaching past the new end are
    /// quantized again once they refill.
    /// </summary>
    public void Rewind(int position)
    {
        if (_type.IsFloat32) return;
        var scratch = new float[_headDim * (1 + _block)]; // a row, then a decoded token block
        for (int l = 0; l < _layers; l++)
        {
            if (_float is not null)
            {
                int need = QuantizedBefore(position), kept = _written[l] - FloatCapacity;
                fixed (float* s = scratch)
                    for (int j = need; j < Math.Min(position, kept); j++)
                        for (int h = 0; h < _kvHeads; h++)
                            new ReadOnlySpan<float>(Fill(l, h, j, 1, j + 1, s, s + _headDim), _headDim).CopyTo(new Span<float>(FloatRow(l, h, j), _headDim));
            }
            _quantized[l] = Math.Min(_quantized[l], QuantizedBefore(position));
            _written[l] = Math.Min(_written[l], position);
        }
    }

    /// <summary>
    /// The largest position at most <paramref name="position"/> that <see cref="Rewind"/> goes back to exactly: every
    /// row the continuation reads in float32 (from Q(p) to p) still in the ring, so it reads what a fresh run
    /// would. Always exact for float32 and for types quantized as written; with a window, only for a rewind within
    /// the ring (p with Q(p) at or past the oldest row it holds); without a window, a <c>:tokens</c> type is exact
    /// at token-block boundaries (Q(p) = p). 0 (a fresh start) is always exact.
    /// </summary>
    public int ExactRewindAtMost(int position)
    {
        if (_type.IsFloat32 || _float is null) return position;
        int kept = _written.Max() - FloatCapacity; // the oldest position whose float32 row the ring still holds
        if (QuantizedBefore(position) >= Math.Min(position, kept)) return position;
        return _window == 0 ? position - position % _block : 0;
    }

    /// <summary>Floats <see cref="Fill"/> needs in its block scratch.</summary>
    public int BlockScratchLength => _type.AlongTokens ? _headDim * _block : 0;

    /// <summary>
    /// Rows of positions [<paramref name="first"/>, first + <paramref name="count"/>) of a KV head, headDim floats
    /// each: decoded by the format's reference dequantizer below <paramref name="boundary"/>, float32 from it on.
    /// Returns the rows in place for a float32 type, else in <paramref name="tile"/>
    /// (count × headDim floats). <paramref name="blockScratch"/> holds a decoded token block (<see cref="BlockScratchLength"/>).
    /// </summary>
    public float* Fill(int layer, int kvHead, int first, int count, int boundary, float* tile, float* blockScratch)
    {
        int end = first + count;
        int decodedEnd = Math.Clamp(boundary, first, end);
        if (_type.IsFloat32) return FloatRow(layer, kvHead, first); // the whole context, in place
        if (decodedEnd > first)
        {
            if (!_type.AlongTokens)
                Decode(PackedRow(layer, kvHead, first), decodedEnd - first, tile);
            else
                for (int b = first / _block; b * _block < decodedEnd; b++)
                {
                    // Decoded channel-major (headDim rows of G), then transposed into the tile's position rows.
                    Decode(PackedBlock(layer, kvHead, b), _headDim, blockScratch);
                    int lo = Math.Max(first, b * _block), hi = Math.Min(decodedEnd, (b + 1) * _block);
                    for (int j = lo; j < hi; j++)
                    {
                        float* dst = tile + (long)(j - first) * _headDim;
                        float* src = blockScratch + (j - b * _block);
                        for (int c = 0; c < _headDim; c++) dst[c] = src[(long)c * _block];
                    }
                }
        }
        for (int j = decodedEnd; j < end; j++)
            new ReadOnlySpan<float>(NewRow(layer, kvHead, j), _headDim).CopyTo(new Span<float>(tile + (long)(j - first) * _headDim, _headDim));
        return tile;
    }

    /// <summary>Decodes <paramref name="rows"/> stored rows into floats.</summary>
    private void Decode(byte* src, int rows, float* dst)
    {
        int values = rows * _rowLength;
        if (_decoder is not null) _decoder(src, dst, values);
        else _row.Dequantize(new ReadOnlySpan<byte>(src, rows * _rowBytes), new Span<float>(dst, values));
    }

    public void Dispose()
    {
        _packedBuffer?.Dispose();
        _float?.Dispose();
    }
}
