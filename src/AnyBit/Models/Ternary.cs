using System.Numerics.Tensors;
using AnyBit.Formats;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

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

    /// <summary>
    /// A ternarized [rows, columns] matrix (every value −s, 0 or +s) as TQ2_0 codes with every block's d = 1, for the
    /// ternary integer kernel, and s to multiply its output by: BitNet's W1.58A8 product in integers. (TQ2_0's f16 d
    /// cannot hold an arbitrary float32 s; factored out of the sum it is exact.) Null where the columns are not whole
    /// 256-value blocks or the matrix is not ternary.
    /// </summary>
    public static PackedMatrix? Pack(ReadOnlySpan<float> w, int rows, int columns, bool keepSource, out float scale)
    {
        scale = 0;
        if (columns % 256 != 0 || w.Length != (long)rows * columns || !IsTernary(w, out scale)) return null;
        var trits = new float[w.Length];
        if (scale != 0)
            for (int i = 0; i < w.Length; i++) trits[i] = w[i] == 0 ? 0 : MathF.Sign(w[i]);
        var bytes = new byte[w.Length / 256 * TensorTypes.Traits(TensorType.TQ2_0).BytesPerBlock];
        // Each block's absmax is 1 (d = 1, exact in f16) or 0 for an all-zero block (its codes then stand for 0).
        Formats.FormatTable.ByType(TensorType.TQ2_0)!.QuantizeRow(trits, bytes);
        if (scale == 0) scale = 1;
        return PackedMatrix.Create(TensorType.TQ2_0, rows, columns, bytes, keepSource);
    }
}
