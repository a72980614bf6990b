using System.Numerics.Tensors;

namespace AnyBit.Models;

/// <summary>BitNet b1.58 weight ternarization: W ≈ s · clamp(round(W / s), −1, 1) with s = mean|W| per tensor.</summary>
public static class Ternary
{
    /// <summary>
    /// True when the tensor already is {−1, 0, +1}·s (one non-zero magnitude). Such weights must be kept as they are:
    /// their own absmean is smaller than s, so ternarizing them again would shrink the matrix.
    /// </summary>
    public static bool IsTernary(ReadOnlySpan<float> w, out float scale)
    {
        scale = 0;
        foreach (float x in w)
        {
            float a = MathF.Abs(x);
            if (a == 0) continue;
            if (scale == 0) scale = a;
            else if (a != scale) return false;
        }
        return true;
    }

    /// <summary>Ternarizes <paramref name="w"/> in place by absmean (a no-op for weights that already are ternary).</summary>
    public static void TernarizeInPlace(Span<float> w)
    {
        if (IsTernary(w, out _)) return;
        double sumAbs = 0;
        foreach (float x in w) sumAbs += MathF.Abs(x);
        float s = MathF.Max((float)(sumAbs / w.Length), 1e-5f);
        for (int i = 0; i < w.Length; i++)
            w[i] = Math.Clamp(MathF.Round(w[i] / s, MidpointRounding.ToEven), -1f, 1f) * s;
    }
}
