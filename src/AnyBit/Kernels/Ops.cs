using System.Numerics.Tensors;

namespace AnyBit.Kernels;

/// <summary>Small per-row operations of the forward pass (norms, activations, activation quantization).</summary>
public static class Ops
{
    /// <summary>RMSNorm: y = x · 1/sqrt(mean(x²) + eps) · weight, in PyTorch's order of float32 operations.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        // The mean of squares is accumulated in double and rounded once. PyTorch's cascade summation is close to
        // correctly rounded, and matching it to the ulp matters for BitNet, whose int8 activation rounding turns
        // an ulp into a different integer at exact ties: a 16-lane float sum flips such ties and moves BitNet's
        // logits away from transformers' (see docs/performance.md#int8-activations).
        double sumSq = 0;
        foreach (float v in x) sumSq += v * v; // squares in float32 as torch's pow(2), summed exactly enough
        float variance = (float)(sumSq / x.Length);
        float inv = 1f / MathF.Sqrt(variance + eps);
        TensorPrimitives.Multiply(x, inv, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>
    /// gpt-oss's clamped SwiGLU in place of <paramref name="gate"/> (ggml's <c>swiglu_oai</c>): g = min(gate, limit),
    /// u = clamp(up, ±limit), gate ← g·σ(1.702·g)·(u + 1). Vectorized a stack chunk at a time as SiluMultiply
    /// (TensorPrimitives' sigmoid differs from the scalar g / (1 + e^−1.702·g) by an ulp or so).
    /// </summary>
    public static void SwiGluOaiMultiply(Span<float> gate, ReadOnlySpan<float> up, float limit)
    {
        const float alpha = 1.702f;
        Span<float> sigmoid = stackalloc float[256];
        Span<float> linear = stackalloc float[256];
        for (int i = 0; i < gate.Length; i += sigmoid.Length)
        {
            var g = gate.Slice(i, Math.Min(sigmoid.Length, gate.Length - i));
            var s = sigmoid.Slice(0, g.Length);
            var u = linear.Slice(0, g.Length);
            TensorPrimitives.Min(g, limit, g);
            TensorPrimitives.Min(up.Slice(i, g.Length), limit, u);
            TensorPrimitives.Max(u, -limit, u);
            TensorPrimitives.Add(u, 1f, u);
            TensorPrimitives.Multiply(g, alpha, s);
            TensorPrimitives.Sigmoid(s, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Multiply(g, u, g);
        }
    }

    /// <summary>SwiGLU gate: g = silu(g) · u = g / (1 + e^−g) · u.</summary>
    public static void SiluMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        // TensorPrimitives' vectorized sigmoid, a stack chunk at a time: a scalar MathF.Exp per element cost a few
        // percent of a decode step at FFN width 5632 (its results differ from the scalar formula by an ulp or so).
        Span<float> sigmoid = stackalloc float[256];
        for (int i = 0; i < gate.Length; i += sigmoid.Length)
        {
            var g = gate.Slice(i, Math.Min(sigmoid.Length, gate.Length - i));
            var s = sigmoid.Slice(0, g.Length);
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Multiply(g, up.Slice(i, g.Length), g);
        }
    }

    /// <summary>
    /// GeGLU gate with the tanh GELU (PyTorch's gelu(approximate="tanh")): g = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) · u.
    /// </summary>
    public static void GeluTanhMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        const float SqrtTwoOverPi = 0.7978845608028654f, Coefficient = 0.044715f;
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            float inner = SqrtTwoOverPi * (g + Coefficient * g * g * g);
            gate[i] = 0.5f * g * (1f + MathF.Tanh(inner)) * up[i];
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
            // float32 product, then round-half-even: exactly torch's (x * scale).round(). Activations of bf16 models
            // hit exact .5 ties, so the last ulp of x decides; see RmsNorm for how this code keeps that ulp close.
            float q = MathF.Round(x[i] * s, MidpointRounding.ToEven);
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
