using AnyBit.Inference;
using AnyBit.Kernels.Attention;

namespace AnyBit.Models;

/// <summary>Attention on a compressed KV cache (<see cref="KvCache"/>): the path taken when the cache is not plain float32.</summary>
public sealed unsafe partial class InferenceSession
{
    private readonly KvAttention? _kvAttention;
    private readonly KvCache[]? _rowCaches;      // (row): the cache of each row's sequence, for one layer's attention
    private readonly int[]? _rowPositionsScratch; // (row): its position

    /// <summary>The compressed cache, or null for the plain float32 one.</summary>
    public KvCache? KvCache => _kv;

    /// <summary>
    /// One layer's attention for the chunk's rows, whose keys and values <see cref="PositionRow"/> has written (and
    /// rotated) in place: each row's sequence reads its new rows there and quantizes the positions that left its
    /// float32 window, the tiles run, then each sequence keeps its newest rows.
    /// </summary>
    private void CompressedAttention(int layer, int tokens)
    {
        var caches = _rowCaches!;
        var positions = _rowPositionsScratch!;
        for (int t = 0; t < tokens; t++)
        {
            caches[t] = RowOwner(t)._kv!;
            positions[t] = RowPosition(t);
        }
        // Rows of one sequence are consecutive and in position order.
        int kv = _c.KvWidth;
        for (int t0 = 0, t = 0; t < tokens; t++)
            if (t + 1 == tokens || caches[t + 1] != caches[t])
            {
                caches[t].BeginChunk(layer, positions[t0], t + 1 - t0, _k.Pointer + (long)t0 * kv, _v.Pointer + (long)t0 * kv, kv);
                t0 = t + 1;
            }
        float* sinks = _model.Weights.Layers[layer].AttnSinks is { } s ? s.Pointer : null;
        _kvAttention!.Run(_pool, layer, tokens, _q.Pointer, _att.Pointer, caches.AsSpan(0, tokens), positions.AsSpan(0, tokens),
            _c.AttentionScale, _c.AttnLogitSoftcap ?? 0, sinks, _c.WindowOf(layer) ?? 0);
        for (int t = 0; t < tokens; t++)
            if (t + 1 == tokens || caches[t + 1] != caches[t]) caches[t].EndChunk(layer);
        Array.Clear(caches, 0, tokens);
    }
}
