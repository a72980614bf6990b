using AnyBit.Kernels;

namespace AnyBit.Inference;

/// <summary>
/// The KV cache's rotation (<c>:rot</c>): each KV head's vectors x become R x = H (D x) / √b, with D random signs
/// drawn once per (layer, KV head, channel) and H the Sylvester Hadamard matrix applied to consecutive blocks of b
/// channels, b the largest power of two dividing the head dimension (the whole head for 64 or 128). R is orthogonal,
/// so (R q)·(R k) = q·k: rotating a query with its KV head's keys leaves the scores unchanged in exact arithmetic,
/// and values rotated before they are stored give R·o, undone by Rᵀ o' = D (H o') / √b on the head's output. Only
/// the quantization error changes: a channel with outliers is spread over the block (QuaRot, QuIP#).
/// </summary>
public sealed class KvRotation
{
    /// <summary>Seed of the signs: fixed, so the same cache type gives the same numbers in every run.</summary>
    public const int Seed = 0x4b56;

    private readonly float[] _signs; // (layer, kv_head, head_dim) of ±1
    private readonly int _kvHeads, _headDim, _block;
    private readonly float _norm;

    public KvRotation(int layers, int kvHeads, int headDim)
    {
        _kvHeads = kvHeads; _headDim = headDim;
        _block = headDim & -headDim; // the largest power of two dividing headDim
        _norm = 1f / MathF.Sqrt(_block);
        var rng = new Random(Seed);
        _signs = new float[layers * kvHeads * headDim];
        for (int i = 0; i < _signs.Length; i++) _signs[i] = rng.Next(2) == 0 ? 1f : -1f;
    }

    /// <summary>Channels per Hadamard block.</summary>
    public int Block => _block;

    private ReadOnlySpan<float> Signs(int layer, int kvHead) => _signs.AsSpan((layer * _kvHeads + kvHead) * _headDim, _headDim);

    /// <summary>x ← R x for a head of (<paramref name="layer"/>, <paramref name="kvHead"/>): a key, a value or one of its queries.</summary>
    public void Rotate(int layer, int kvHead, Span<float> x)
    {
        var d = Signs(layer, kvHead);
        for (int i = 0; i < _headDim; i++) x[i] *= d[i] * _norm;
        for (int b = 0; b < _headDim; b += _block) Hadamard.Transform(x.Slice(b, _block));
    }

    /// <summary>x ← Rᵀ x: a head's output computed from rotated values back in the model's basis.</summary>
    public void Unrotate(int layer, int kvHead, Span<float> x)
    {
        for (int b = 0; b < _headDim; b += _block) Hadamard.Transform(x.Slice(b, _block));
        var d = Signs(layer, kvHead);
        for (int i = 0; i < _headDim; i++) x[i] *= d[i] * _norm;
    }
}
