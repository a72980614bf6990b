using AnyBit.Models;

namespace AnyBit.Kernels;

/// <summary>
/// Rotary position embedding. Frequencies follow Hugging Face's float32 computation: inv_freq[i] = 1 / θ^(2i/d)
/// (optionally rescaled: linear, Llama-3's wavelength-dependent smoothing, or YaRN's ramp), angle = position · inv_freq in
/// float32, then cos/sin. Tables are built once for the context in use.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _cos, _sin; // [positions, headDim/2]
    private readonly int _half;

    public int HeadDim { get; }
    public int Positions { get; }
    public bool Interleaved { get; }

    /// <param name="rope">the model's RoPE settings</param>
    /// <param name="headDim">rotated width per head</param>
    /// <param name="positions">table length (the context size)</param>
    /// <param name="freqFactors">optional per-frequency divisors (GGUF's rope_freqs.weight, how llama.cpp stores Llama-3 scaling)</param>
    public RotaryEmbedding(RopeConfig rope, int headDim, int positions, float[]? freqFactors = null)
    {
        HeadDim = headDim; Positions = positions; Interleaved = rope.Interleaved;
        _half = headDim / 2;
        var invFreq = InverseFrequencies(rope, headDim);
        if (freqFactors is not null)
        {
            if (freqFactors.Length != _half) throw new AnyBitException($"rope_freqs has {freqFactors.Length} factors, expected {_half}");
            for (int i = 0; i < _half; i++) invFreq[i] /= freqFactors[i];
        }
        float positionScale = rope.Scaling == RopeScalingType.Linear ? (float)(1.0 / rope.Factor) : 1f;
        float attentionFactor = (float)rope.AttentionFactor; // LongRoPE's magnitude scaling of cos and sin, 1 otherwise
        _cos = new float[(long)positions * _half];
        _sin = new float[(long)positions * _half];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < _half; i++)
            {
                float angle = (p * positionScale) * invFreq[i];
                _cos[p * _half + i] = (float)Math.Cos(angle) * attentionFactor;
                _sin[p * _half + i] = (float)Math.Sin(angle) * attentionFactor;
            }
    }

    /// <summary>inv_freq as transformers computes it (in float32), including rope scaling.</summary>
    public static float[] InverseFrequencies(RopeConfig rope, int headDim)
    {
        int half = headDim / 2;
        var inv = new float[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1f / (float)Math.Pow(rope.Theta, (float)(2 * i) / headDim);
        if (rope.Scaling == RopeScalingType.Llama3)
        {
            double factor = rope.Factor, low = rope.LowFreqFactor, high = rope.HighFreqFactor;
            double old = rope.OriginalMaxPositions;
            double lowWavelen = old / low, highWavelen = old / high;
            for (int i = 0; i < half; i++)
            {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen < highWavelen) continue; // high frequencies unchanged
                if (wavelen > lowWavelen) { inv[i] = (float)(inv[i] / factor); continue; }
                double smooth = (old / wavelen - low) / (high - low);
                inv[i] = (float)((1 - smooth) * inv[i] / factor + smooth * inv[i]);
            }
        }
        if (rope.Scaling == RopeScalingType.Yarn)
        {
            // The correction range in dimension pairs: where a frequency turns BetaFast (BetaSlow) times over the original context.
            double Dim(double rotations) => headDim * Math.Log(rope.OriginalMaxPositions / (rotations * 2 * Math.PI)) / (2 * Math.Log(rope.Theta));
            double low = Dim(rope.BetaFast), high = Dim(rope.BetaSlow);
            if (rope.YarnTruncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
            low = Math.Max(low, 0); high = Math.Min(high, headDim - 1);
            for (int i = 0; i < half; i++)
            {
                // 1 keeps the original frequency (extrapolation), 0 divides it by the factor (interpolation).
                double keep = 1 - Math.Clamp((i - low) / Math.Max(0.001, high - low), 0, 1);
                inv[i] = (float)(inv[i] / rope.Factor * (1 - keep) + inv[i] * keep);
            }
        }
        return inv;
    }

    /// <summary>Rotates one head vector <paramref name="v"/> (length HeadDim) for position <paramref name="pos"/>.</summary>
    public void Apply(Span<float> v, int pos)
    {
        var cos = _cos.AsSpan(pos * _half, _half);
        var sin = _sin.AsSpan(pos * _half, _half);
        if (Interleaved)
        {
            for (int i = 0; i < _half; i++)
            {
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cos[i] - b * sin[i];
                v[2 * i + 1] = a * sin[i] + b * cos[i];
            }
        }
        else
        {
            for (int i = 0; i < _half; i++)
            {
                float a = v[i], b = v[i + _half];
                v[i] = a * cos[i] - b * sin[i];
                v[i + _half] = b * cos[i] + a * sin[i];
            }
        }
    }
}
