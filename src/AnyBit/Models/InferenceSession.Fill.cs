using AnyBit.Inference;

namespace AnyBit.Models;

/// <summary>Filling the KV cache without running the model: long-context speed and memory measurements.</summary>
public sealed unsafe partial class InferenceSession
{
    /// <summary>
    /// Appends <paramref name="positions"/> positions of seeded random keys and values (a chunk of standard normal
    /// rows, drawn once and repeated for every chunk and layer) to the cache through the same write, quantize and window path the forward pass uses, without
    /// running the model. What a later decode step costs does not depend on the cached values, so this measures decode
    /// at a depth of 32k or 128k positions in seconds instead of the hours prefill takes on a CPU (<c>bench --depth-fill
    /// random</c>); the logits that follow are meaningless.
    /// </summary>
    public void FillRandom(int positions, ulong seed = 1)
    {
        if (positions < 0 || Position + positions > ContextSize)
            throw new AnyBitException($"{Position + positions} positions exceed the context size of {ContextSize}");
        int kv = _c.KvWidth, hd = _c.HeadDim;
        var rng = new Random(unchecked((int)seed));
        int rows = Math.Min(_maxBatch, Math.Max(1, positions));
        var keys = new float[rows * kv];
        var values = new float[rows * kv];
        Normal(rng, keys);
        Normal(rng, values);
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
                    {
                        var key = _k.Slice((long)t * kv + h * hd, hd);
                        var value = _v.Slice((long)t * kv + h * hd, hd);
                        if (_kv is not null) { _kv.Write(l, h, first + t, key, value); continue; }
                        long at = CacheOffset(l, h, first + t);
                        key.CopyTo(_keyCache!.Slice(at, hd));
                        value.CopyTo(_valueCache!.Slice(at, hd));
                    }
                if (_kv is null) continue;
                _kv.BeginChunk(l, first, n, _k.Pointer, _v.Pointer, kv);
                _kv.EndChunk(l);
            }
        }
        Position += positions;
    }

    private static void Normal(Random rng, Span<float> x)
    {
        for (int i = 0; i < x.Length; i += 2)
        {
            // Box–Muller: two normals from two uniforms.
            double u = 1.0 - rng.NextDouble(), v = rng.NextDouble(), r = Math.Sqrt(-2 * Math.Log(u));
            x[i] = (float)(r * Math.Cos(2 * Math.PI * v));
            if (i + 1 < x.Length) x[i + 1] = (float)(r * Math.Sin(2 * Math.PI * v));
        }
    }
}
