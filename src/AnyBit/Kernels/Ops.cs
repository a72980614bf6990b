using System.Numerics.Tensors;

namespace AnyBit.Kernels;

/// <summary>Small per-row operations of the forward pass (norms, activations, activation quantization).</summary>
public static class Ops
{
    /// <summary>RMSNorm: y = x / sqrt(mean(x²) + eps) · weight, with the mean accumulated in float32 as PyTorch does.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        float sumSq = TensorPrimitives.SumOfSquares(x);
        float inv = 1f / MathF.Sqrt(sumSq / x.Length + eps);
        TensorPrimitives.Multiply(x, inv, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>SwiGLU gate: g = silu(g) · u = g / (1 + e^−g) · u.</summary>
    public static void SiluMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>BitNet's squared-ReLU gate: g = max(g, 0)² · u.</summary>
    public static void ReluSquaredMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = MathF.Max(gate[i], 0f);
            gate[i] = g * g * up[i];
        }
    }

    /// <summary>
    /// BitNet b1.58 activation quantization, fake-quantized in place: s = 127 / max(|x|, 1e-5),
    /// x ← clamp(round(x·s), −128, 127) / s with round-half-to-even (torch.round).
    /// </summary>
    public static void QuantizeActivationsInt8(Span<float> x)
    {
        float max = TensorPrimitives.MaxMagnitude(x);
        float s = 127f / MathF.Max(MathF.Abs(max), 1e-5f);
        for (int i = 0; i < x.Length; i++)
        {
            // The product is rounded from its exact (double) value: a float32 product can land exactly on .5 when
            // the true value is just off it, turning a clear case into a tie that round-half-even then breaks the
            // "wrong" way relative to any implementation whose last ulp differs.
            float q = (float)Math.Round((double)x[i] * s, MidpointRounding.ToEven);
            q = Math.Clamp(q, -128f, 127f);
            x[i] = q / s;
        }
    }

    /// <summary>Max-subtracted softmax in place.</summary>
    public static void Softmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        float sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            float e = MathF.Exp(x[i] - max);
            x[i] = e;
            sum += e;
        }
        TensorPrimitives.Divide(x, sum, x);
    }
}
