using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AnyBit.Kernels;

/// <summary>
/// One query head against the cached keys and values of its KV head: scores q·k_j·scale, a max-subtracted
/// softmax, and the weighted sum of value rows, all in float32. Cache rows are <c>headDim</c> floats, consecutive
/// by position, so both passes stream memory in order.
/// </summary>
/// <remarks>
/// Written out by hand rather than as a TensorPrimitives call per position: a head is 64-128 floats, so one call
/// per cached row spent most of its time in call and span overhead (see docs/performance.md#prefill). Here the
/// query stays in registers for the score pass and the output accumulates in registers, 64 dimensions at a time,
/// for the value pass.
/// </remarks>
public static unsafe class AttentionKernel
{
    /// <param name="query">the head's query, <paramref name="headDim"/> floats</param>
    /// <param name="keys">key row of position 0 of the span attended to; row j is at keys + j·headDim</param>
    /// <param name="values">value row of position 0, laid out like <paramref name="keys"/></param>
    /// <param name="headDim">floats per head</param>
    /// <param name="count">positions attended to</param>
    /// <param name="scale">score multiplier, usually 1/√headDim</param>
    /// <param name="scores">scratch of at least <paramref name="count"/> floats (left holding the probabilities)</param>
    /// <param name="output">the head's output, <paramref name="headDim"/> floats</param>
    /// <param name="softCap">Gemma 2's score soft-cap c (scores become c·tanh(s/c) before the softmax); 0 for none</param>
    /// <param name="sink">gpt-oss's attention sink: a logit that joins the softmax with no value row (its share of the
    /// probability attends to nothing); −∞ for none</param>
    public static void Head(float* query, float* keys, float* values, int headDim, int count, float scale, float* scores, float* output,
        float softCap = 0, float sink = float.NegativeInfinity)
    {
        if (!Vector256.IsHardwareAccelerated || headDim % 16 != 0)
        {
            HeadReference(query, keys, values, headDim, count, scale, scores, output, softCap, sink);
            return;
        }
        for (int j = 0; j < count; j++) scores[j] = Dot(query, keys + (long)j * headDim, headDim) * scale;
        var p = new Span<float>(scores, count);
        if (softCap > 0) SoftCap(p, softCap);
        float max = MathF.Max(TensorPrimitives.Max(p), sink);
        TensorPrimitives.Subtract(p, max, p);
        TensorPrimitives.Exp(p, p);
        TensorPrimitives.Divide(p, TensorPrimitives.Sum(p) + MathF.Exp(sink - max), p);
        new Span<float>(output, headDim).Clear();
        AddWeighted(output, values, headDim, scores, count);
    }

    private static void SoftCap(Span<float> p, float cap)
    {
        TensorPrimitives.Multiply(p, 1f / cap, p);
        TensorPrimitives.Tanh(p, p);
        TensorPrimitives.Multiply(p, cap, p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        var s0 = Vector256<float>.Zero;
        var s1 = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
        }
        return Vector256.Sum(s0 + s1);
    }

    /// <summary>
    /// acc[0..64) += Σ_j p_j · v_j[0..64), v_j at <paramref name="v"/> + j·<paramref name="stride"/>: eight
    /// accumulators held in registers across all positions (also the tiled attention's value sums, FlashAttention).
    /// </summary>
    internal static void AddWeighted64(float* acc, float* v, int stride, float* p, int count)
    {
        var o0 = Vector256.Load(acc); var o1 = Vector256.Load(acc + 8); var o2 = Vector256.Load(acc + 16); var o3 = Vector256.Load(acc + 24);
        var o4 = Vector256.Load(acc + 32); var o5 = Vector256.Load(acc + 40); var o6 = Vector256.Load(acc + 48); var o7 = Vector256.Load(acc + 56);
        for (int j = 0; j < count; j++, v += stride)
        {
            var s = Vector256.Create(p[j]);
            o0 = Vector256.FusedMultiplyAdd(Vector256.Load(v), s, o0);
            o1 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 8), s, o1);
            o2 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 16), s, o2);
            o3 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 24), s, o3);
            o4 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 32), s, o4);
            o5 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 40), s, o5);
            o6 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 48), s, o6);
            o7 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 56), s, o7);
        }
        o0.Store(acc); o1.Store(acc + 8); o2.Store(acc + 16); o3.Store(acc + 24);
        o4.Store(acc + 32); o5.Store(acc + 40); o6.Store(acc + 48); o7.Store(acc + 56);
    }

    /// <summary><see cref="AddWeighted64"/> for 8 dimensions (the rest of a head that is not a multiple of 64).</summary>
    internal static void AddWeighted8(float* acc, float* v, int stride, float* p, int count)
    {
        var o = Vector256.Load(acc);
        for (int j = 0; j < count; j++, v += stride) o = Vector256.FusedMultiplyAdd(Vector256.Load(v), Vector256.Create(p[j]), o);
        o.Store(acc);
    }

    /// <summary>acc[0..headDim) += Σ_j p_j · v_j (headDim a multiple of 8).</summary>
    internal static void AddWeighted(float* acc, float* v, int headDim, float* p, int count)
    {
        int d = 0;
        for (; d + 64 <= headDim; d += 64) AddWeighted64(acc + d, v + d, headDim, p, count);
        for (; d < headDim; d += 8) AddWeighted8(acc + d, v + d, headDim, p, count);
    }

    /// <summary>The scalar definition (double sums) the SIMD path is tested against; also the path for odd head sizes.</summary>
    public static void HeadReference(float* query, float* keys, float* values, int headDim, int count, float scale, float* scores, float* output,
        float softCap = 0, float sink = float.NegativeInfinity)
    {
        float max = sink;
        for (int j = 0; j < count; j++)
        {
            double dot = 0;
            for (int i = 0; i < headDim; i++) dot += (double)query[i] * keys[(long)j * headDim + i];
            scores[j] = (float)dot * scale;
            if (softCap > 0) scores[j] = MathF.Tanh(scores[j] / softCap) * softCap;
            max = MathF.Max(max, scores[j]);
        }
        double sum = MathF.Exp(sink - max);
        for (int j = 0; j < count; j++) sum += scores[j] = MathF.Exp(scores[j] - max);
        for (int j = 0; j < count; j++) scores[j] = (float)(scores[j] / sum);
        for (int i = 0; i < headDim; i++)
        {
            double o = 0;
            for (int j = 0; j < count; j++) o += (double)scores[j] * values[(long)j * headDim + i];
            output[i] = (float)o;
        }
    }
}
