using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
        int r = from;
        if (vector && Avx.IsSupported)
            for (; r + 8 <= to; r += 8)
                (Dot8(query, headDim, keysLow, keysHigh, keySplit, r) * Vector256.Create(scale)).Store(scores + r);
        for (; r < to; r++)
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
        float tileSum;
        if (Avx2.IsSupported && Fma.IsSupported) tileSum = ExpSum(scores, from, to, mNew);
        else
        {
            TensorPrimitives.Subtract(s, mNew, s);
            TensorPrimitives.Exp(s, s);
            tileSum = TensorPrimitives.Sum(s);
        }
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
        state[1] += tileSum;
        if (vector) Accumulate(acc, headDim, scores, from, to, valuesLow, valuesHigh, valueSplit);
        else
            for (int j = from; j < to; j++)
            {
                float* v = (j < valueSplit ? valuesLow : valuesHigh) + (long)j * headDim;
                for (int i = 0; i < headDim; i++) acc[i] += scores[j] * v[i];
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

    /// <summary>scores[r] ← exp(scores[r] − max) for r in [from, to), returning their sum: 8 at a time by
    /// <see cref="Exp8"/>, the rest by MathF.Exp.</summary>
    internal static float ExpSum(float* scores, int from, int to, float max)
    {
        var sum = Vector256<float>.Zero;
        var m = Vector256.Create(max);
        int r = from;
        for (; r + 8 <= to; r += 8)
        {
            var e = Exp8(Vector256.Load(scores + r) - m);
            e.Store(scores + r);
            sum += e;
        }
        float total = Vector256.Sum(sum);
        for (; r < to; r++) total += scores[r] = MathF.Exp(scores[r] - max);
        return total;
    }

    /// <summary>
    /// exp(x) for x ≤ 0 in float arithmetic (Cephes' expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-6 polynomial
    /// for e^r, 2ⁿ by the exponent bits; within 2 ulp of exp), 0 below −87. Written by hand because .NET's vector
    /// Exp computes in double precision, which made it as costly as the tile's value accumulation; attention weights
    /// need no more than float accuracy (the tests compare against double-precision attention).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Exp8(Vector256<float> x)
    {
        var tiny = Vector256.LessThan(x, Vector256.Create(-87f));
        x = Vector256.Max(x, Vector256.Create(-87f));
        var n = Avx.RoundToNearestInteger(x * Vector256.Create(1.44269504088896341f));
        var r = Fma.MultiplyAddNegated(n, Vector256.Create(0.693359375f), x);
        r = Fma.MultiplyAddNegated(n, Vector256.Create(-2.12194440e-4f), r);
        var p = Vector256.Create(1.9875691500E-4f);
        p = Fma.MultiplyAdd(p, r, Vector256.Create(1.3981999507E-3f));
        p = Fma.MultiplyAdd(p, r, Vector256.Create(8.3334519073E-3f));
        p = Fma.MultiplyAdd(p, r, Vector256.Create(4.1665795894E-2f));
        p = Fma.MultiplyAdd(p, r, Vector256.Create(1.6666665459E-1f));
        p = Fma.MultiplyAdd(p, r, Vector256.Create(5.0000001201E-1f));
        p = Fma.MultiplyAdd(p * r, r, r) + Vector256.Create(1f);
        var scale = Vector256.ShiftLeft(Avx.ConvertToVector256Int32(n) + Vector256.Create(127), 23).AsSingle();
        return Vector256.AndNot(p * scale, tiny);
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

    /// <summary>The query's dot products with the 8 key rows r … r + 7, as one vector: each row's sum held in its own
    /// register across the head, the 8 reduced together by horizontal adds (a row's own reduction would cost as much as
    /// its products for a head of 64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Dot8(float* q, int n, float* low, float* high, int split, int r)
    {
        float* k0 = Row(r), k1 = Row(r + 1), k2 = Row(r + 2), k3 = Row(r + 3), k4 = Row(r + 4), k5 = Row(r + 5), k6 = Row(r + 6), k7 = Row(r + 7);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int i = 0; i < n; i += 8)
        {
            var x = Vector256.Load(q + i);
            a0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k0 + i), a0);
            a1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k1 + i), a1);
            a2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k2 + i), a2);
            a3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k3 + i), a3);
            a4 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k4 + i), a4);
            a5 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k5 + i), a5);
            a6 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k6 + i), a6);
            a7 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k7 + i), a7);
        }
        // Per 128-bit half: [Σ0 Σ1 Σ2 Σ3] of rows 0–3 and of rows 4–7; the halves' partial sums then added.
        var u0 = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));
        var u1 = Avx.HorizontalAdd(Avx.HorizontalAdd(a4, a5), Avx.HorizontalAdd(a6, a7));
        return Avx.Permute2x128(u0, u1, 0x20) + Avx.Permute2x128(u0, u1, 0x31);

        float* Row(int j) => (j < split ? low : high) + (long)j * n;
    }

    private static float DotScalar(float* a, float* b, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>acc += Σ_r p_r·v_r over the tile's rows: those below the split from the decoded rows, the rest from
    /// the float32 ones, each run by <see cref="AttentionKernel.AddWeighted"/> (in row order, as one pass would).</summary>
    private static void Accumulate(float* acc, int headDim, float* p, int from, int to, float* low, float* high, int split)
    {
        int mid = Math.Clamp(split, from, to);
        AttentionKernel.AddWeighted(acc, low + (long)from * headDim, headDim, p + from, mid - from);
        AttentionKernel.AddWeighted(acc, high + (long)mid * headDim, headDim, p + mid, to - mid);
    }
}
