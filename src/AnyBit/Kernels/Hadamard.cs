namespace AnyBit.Kernels;

/// <summary>
/// The fast Walsh–Hadamard transform: x ← H x for the Sylvester Hadamard matrix of order n (a power of two), in
/// n·log2(n) additions. H is symmetric and H·H = n·I, so H/√n is an orthogonal rotation (QuaRot, QuIP#).
/// </summary>
public static class Hadamard
{
    public static bool IsPowerOfTwo(int n) => n > 0 && (n & (n - 1)) == 0;

    public static void Transform(Span<float> x)
    {
        int n = x.Length;
        if (!IsPowerOfTwo(n)) throw new ArgumentException($"the Hadamard transform needs a power-of-two length, not {n}", nameof(x));
        for (int h = 1; h < n; h <<= 1)
            for (int i = 0; i < n; i += h << 1)
                for (int j = i; j < i + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
    }
}
