
namespace AnyBit.Models;

/// <summary>Filling the KV cache without running the model: long-context speed and memory measurements.</summary>
public sealed unsafe partial class InferenceSession
{
    /// <summary>
    /// Appends <paramref name="positions"/> positions of seeded random keys and values (a chunk of standard normal
    /// rows, drawn once and repeated for every chunk and layer) to the cache through the same write, quantize and window
    /// path the forward pass uses, without running the model. What a later decode step costs does not depend on the cached values, so this measures decode
    /// at a depth of 32k or 128k positions in seconds instead of the hours prefill takes on a CPU (<c>bench --depth-fill
    /// random</c>); the logits that follow are meaningless.
    /// </summary>
    public void FillRandom(int positions, ulong seed = 1)
    {
        if (positions < 0 || Position + positions > ContextSize)
            throw new AnyBitException($"{Position + positions} positions exceed the context size of {ContextSize}");
        int kv = _c.KvWidth, hd = _c.HeadDim;
        int rows = Math.Min(_maxBatch, Math.Max(1, positions));
        var keys = Quantization.SyntheticModel.Normal((long)rows * kv, seed, 1f);
        var values = Quantization.SyntheticModel.Normal((long)rows * kv, seed + 1, 1f);
        for (int first = Position; first < Position + positions; first += _maxBatch)
        {
            int n = Math.Min(_maxBatch, Position + positions - first);
            for (int l = 0; l < _c.NumLayers; l++)
            {
                // Written from copies: a rotated cache rotates the rows it is given in place.
                keys.AsSpan(0, n * kv).CopyTo(_k.Slice(0, n * kv));
                values.AsSpan(0, n * kv).CopyTo(_v.Slice(0, n * kv));
                for (int t = 0; t < n; t++)
                    for (int h = 0; h < _c.NumKvHeads; h++)
                        StoreKv(l, h, first + t, _k.Slice((long)t * kv + h * hd, hd), _v.Slice((long)t * kv + h * hd, hd));
                if (_kv is null) continue;
                _kv.BeginChunk(l, first, n, _k.Pointer, _v.Pointer, kv);
                _kv.EndChunk(l);
            }
        }
        Position += positions;
    }
}
