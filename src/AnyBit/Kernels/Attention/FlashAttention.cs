using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AnyBit.Kernels.Attention;

/// <summary>
/// Attention by tiles of keys with an online softmax (FlashAttention's recurrence): one query's running state
/// (m, l, acc) is updated tile by tile — scores of the tile, a new running maximum, the old sum and output rescaled by
/// exp(m_old − m_new), the tile's exp-weights added — so no row of scores longer than a tile exists, and a long
/// context can be cut into spans whose states are merged at the end (<see cref="Merge"/>, split-K).
/// </summary>
/// <remarks>
/// State layout per query: [m, l, acc[headDim]] (headDim + 2 floats): m the running maximum score, l the running
/// Σ exp(s − m), acc the running Σ exp(s − m)·v. A tile's key and value rows come from two row arrays each: rows
/// below the split from the first (decoded from the quantized cache), the others from the second (the float32
/// window), because queries of one chunk may read the same position in different forms (see KvCacheOptions).
/// </remarks>
public static unsafe class FlashAttention
{
    /// <summary>Floats of one query's state.</summary>
    public static int StateLength(int headDim) => headDim + 2;

    /// <summary>Empty state: m = −∞, l = 0, acc = 0.</summary>
    public static void Begin(float* state, int headDim)
    {
        state[0] = float.NegativeInfinity;
        state[1] = 0;
        new Span<float>(state + 2, headDim).Clear();
    }

    /// <summary>
    /// Folds rows [<paramref name="from"/>, <paramref name="to"/>) of a tile into <paramref name="state"/>.
    /// Row r's key is <c>(r &lt; keySplit ? keysLow : keysHigh) + r·headDim</c>, its value likewise; the query is
    /// headDim floats, scores a scratch of at least <c>to</c> floats, softCap Gemma 2's score soft-cap c
    /// (s ← c·tanh(s/c); 0 for none).
    /// </summary>
    public static void Tile(float* query, int headDim, float scale, float softCap,
        float* keysLow, float* keysHigh, int keySplit, float* valuesLow, float* valuesHigh, int valueSplit,
        int from, int to, float* scores, float* state)
    {
        if (from >= to) return;
        bool vector = Vector256.IsHardwareAccelerated && headDim % 8 == 0;
        for (int r = from; r < to; r++)
        {
            float* k = (r < keySplit ? keysLow : keysHigh) + (long)r * headDim;
            scores[r] = (vector ? Dot(query, k, headDim) : DotScalar(query, k, headDim)) * scale;
        }
        var s = new Span<float>(scores + from, to - from);
        if (softCap > 0)
        {
            TensorPrimitives.Multiply(s, 1f / softCap, s);
            TensorPrimitives.Tanh(s, s);
            TensorPrimitives.Multiply(s, softCap, s);
        }
        float m = state[0];
        float mNew = MathF.Max(m, TensorPrimitives.Max(s));
        TensorPrimitives.Subtract(s, mNew, s);
        TensorPrimitives.Exp(s, s);
        float* acc = state + 2;
        if (m != mNew)
        {
            // exp(−∞) = 0 clears the empty state; the first tile needs no rescale, but 0·0 is harmless.
            float correction = MathF.Exp(m - mNew);
            state[1] *= correction;
            var a = new Span<float>(acc, headDim);
            TensorPrimitives.Multiply(a, correction, a);
        }
        state[0] = mNew;
        state[1] += TensorPrimitives.Sum(s);
        if (vector) Accumulate(acc, headDim, scores, from, to, valuesLow, valuesHigh, valueSplit);
        else
            for (int r = from; r < to; r++)
            {
                float* v = (r < valueSplit ? valuesLow : valuesHigh) + (long)r * headDim;
                for (int i = 0; i < headDim; i++) acc[i] += scores[r] * v[i];
            }
    }

    /// <summary>
    /// The attention output of a query from the states of the spans its positions were cut into: each state
    /// rescaled to the common maximum (which includes the sink), output = Σ acc / (Σ l + exp(sink − max)). State s is
    /// at states + s·stateStride; sink is gpt-oss's sink logit (it joins the softmax with no value row; −∞ for none).
    /// </summary>
    public static void Merge(float* states, int count, int stateStride, int headDim, float sink, float* output)
    {
        float max = sink;
        for (int s = 0; s < count; s++) max = MathF.Max(max, states[(long)s * stateStride]);
        var o = new Span<float>(output, headDim);
        o.Clear();
        if (float.IsNegativeInfinity(max)) return; // nothing attended to (never the case for a causal query)
        float sum = MathF.Exp(sink - max);
        for (int s = 0; s < count; s++)
        {
            float* st = states + (long)s * stateStride;
            if (st[1] == 0) continue;
            float w = MathF.Exp(st[0] - max);
            sum += st[1] * w;
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(st + 2, headDim), w, o, o);
        }
        TensorPrimitives.Divide(o, sum, o);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        var s0 = Vector256<float>.Zero;
        var s1 = Vector256<float>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
        }
        if (i < n) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
        return Vector256.Sum(s0 + s1);
    }

    private static float DotScalar(float* a, float* b, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>acc += Σ_r p_r·v_r, 64 dimensions at a time held in registers across the tile's rows.</summary>
    private static void Accumulate(float* acc, int headDim, float* p, int from, int to, float* low, float* high, int split)
    {
        int d = 0;
        for (; d + 64 <= headDim; d += 64)
        {
            float* o = acc + d;
            var o0 = Vector256.Load(o); var o1 = Vector256.Load(o + 8); var o2 = Vector256.Load(o + 16); var o3 = Vector256.Load(o + 24);
            var o4 = Vector256.Load(o + 32); var o5 = Vector256.Load(o + 40); var o6 = Vector256.Load(o + 48); var o7 = Vector256.Load(o + 56);
            for (int r = from; r < to; r++)
            {
                float* v = (r < split ? low : high) + (long)r * headDim + d;
                var s = Vector256.Create(p[r]);
                o0 = Vector256.FusedMultiplyAdd(Vector256.Load(v), s, o0);
                o1 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 8), s, o1);
                o2 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 16), s, o2);
                o3 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 24), s, o3);
                o4 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 32), s, o4);
                o5 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 40), s, o5);
                o6 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 48), s, o6);
                o7 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 56), s, o7);
            }
            o0.Store(o); o1.Store(o + 8); o2.Store(o + 16); o3.Store(o + 24);
            o4.Store(o + 32); o5.Store(o + 40); o6.Store(o + 48); o7.Store(o + 56);
        }
        for (; d < headDim; d += 8)
        {
            var o0 = Vector256.Load(acc + d);
            for (int r = from; r < to; r++)
                o0 = Vector256.FusedMultiplyAdd(Vector256.Load((r < split ? low : high) + (long)r * headDim + d), Vector256.Create(p[r]), o0);
            o0.Store(acc + d);
        }
    }
}
