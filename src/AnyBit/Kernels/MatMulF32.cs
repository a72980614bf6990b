using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AnyBit.Kernels;

/// <summary>
/// Y[t, o] = Σ_k X[t, k] · W[o, k] for float32 row-major X [tokens, K] and W [N, K] (a linear layer's weight as
/// PyTorch stores it), i.e. Y = X·Wᵀ. Work is split over runs of output rows (RowRuns); within a run a 4-row × 4-token
/// register tile reads each weight vector once per four tokens, which is what makes prefill matrix-matrix work
/// rather than repeated matrix-vector products.
/// </summary>
public sealed unsafe class MatMulF32 : IParallelWork
{
    private RowRuns _runs;
    private float* _x, _w, _y;
    private int _tokens, _k, _n;

    /// <summary>The scalar reference: plain double-free loops, for tests.</summary>
    public static void Reference(ReadOnlySpan<float> x, int tokens, int k, ReadOnlySpan<float> w, int n, Span<float> y)
    {
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < n; o++)
            {
                float sum = 0;
                for (int i = 0; i < k; i++) sum += x[t * k + i] * w[o * k + i];
                y[t * n + o] = sum;
            }
    }

    /// <summary>Computes Y = X·Wᵀ on <paramref name="pool"/>.</summary>
    public void Run(WorkerPool pool, float* x, int tokens, int k, float* w, int n, float* y)
    {
        _x = x; _w = w; _y = y; _tokens = tokens; _k = k; _n = n;
        pool.Run(this, _runs.Plan(n, pool.WorkerCount));
    }

    public void Execute(int item, int worker)
    {
        var (r0, r1) = _runs[item];
        Rows(_x, _tokens, _k, _w, _n, _y, r0, r1);
    }

    /// <summary>Computes output rows [r0, r1) for every token.</summary>
    public static void Rows(float* x, int tokens, int k, float* w, int n, float* y, int r0, int r1) =>
        Rows<F32Elements>(x, tokens, k, w, n, y, r0, r1);

    /// <summary>
    /// <see cref="Rows(float*, int, int, float*, int, float*, int, int)"/> for weights stored as
    /// <typeparamref name="TW"/>: each weight is widened to the float32 it stands for as it is loaded, then meets the
    /// same tiles in the same order, so a 16-bit copy of float32 weights gives the float32 path's bits.
    /// </summary>
    internal static void Rows<TW>(float* x, int tokens, int k, void* w, int n, float* y, int r0, int r1) where TW : struct, IWeightElements
    {
        int r = r0;
        if (Vector512.IsHardwareAccelerated && k >= 16)
        {
            for (; r + 4 <= r1; r += 4)
            {
                int t = 0;
                for (; t + 4 <= tokens; t += 4) Tile4x4<TW>(x + (long)t * k, k, w, (long)r * k, y + (long)t * n + r, n);
                for (; t < tokens; t++) Tile1x4<TW>(x + (long)t * k, k, w, (long)r * k, y + (long)t * n + r);
            }
        }
        if (r == r1) return;
        // Narrow weights are widened a row at a time into a pooled buffer (no garbage per decode step).
        float[]? row = typeof(TW) == typeof(F32Elements) ? null : ArrayPool<float>.Shared.Rent(k);
        for (; r < r1; r++)
        {
            ReadOnlySpan<float> wr = row is null ? new ReadOnlySpan<float>((float*)w + (long)r * k, k) : row.AsSpan(0, k);
            if (row is not null) TW.Widen(w, (long)r * k, row.AsSpan(0, k));
            for (int t = 0; t < tokens; t++)
                y[(long)t * n + r] = TensorPrimitives.Dot(new ReadOnlySpan<float>(x + (long)t * k, k), wr);
        }
        if (row is not null) ArrayPool<float>.Shared.Return(row);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x4<TW>(float* x, int k, void* w, long at, float* y, int n) where TW : struct, IWeightElements
    {
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        long w0 = at, w1 = at + k, w2 = at + 2 * k, w3 = at + 3 * k;
        float* x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k;
        int i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var v0 = TW.Load16(w, w0 + i); var v1 = TW.Load16(w, w1 + i);
            var v2 = TW.Load16(w, w2 + i); var v3 = TW.Load16(w, w3 + i);
            var u = Vector512.Load(x0 + i);
            a00 = Vector512.FusedMultiplyAdd(u, v0, a00); a01 = Vector512.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector512.FusedMultiplyAdd(u, v2, a02); a03 = Vector512.FusedMultiplyAdd(u, v3, a03);
            u = Vector512.Load(x1 + i);
            a10 = Vector512.FusedMultiplyAdd(u, v0, a10); a11 = Vector512.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector512.FusedMultiplyAdd(u, v2, a12); a13 = Vector512.FusedMultiplyAdd(u, v3, a13);
            u = Vector512.Load(x2 + i);
            a20 = Vector512.FusedMultiplyAdd(u, v0, a20); a21 = Vector512.FusedMultiplyAdd(u, v1, a21);
            a22 = Vector512.FusedMultiplyAdd(u, v2, a22); a23 = Vector512.FusedMultiplyAdd(u, v3, a23);
            u = Vector512.Load(x3 + i);
            a30 = Vector512.FusedMultiplyAdd(u, v0, a30); a31 = Vector512.FusedMultiplyAdd(u, v1, a31);
            a32 = Vector512.FusedMultiplyAdd(u, v2, a32); a33 = Vector512.FusedMultiplyAdd(u, v3, a33);
        }
        float* y0 = y, y1 = y + n, y2 = y + 2 * n, y3 = y + 3 * n;
        y0[0] = Vector512.Sum(a00); y0[1] = Vector512.Sum(a01); y0[2] = Vector512.Sum(a02); y0[3] = Vector512.Sum(a03);
        y1[0] = Vector512.Sum(a10); y1[1] = Vector512.Sum(a11); y1[2] = Vector512.Sum(a12); y1[3] = Vector512.Sum(a13);
        y2[0] = Vector512.Sum(a20); y2[1] = Vector512.Sum(a21); y2[2] = Vector512.Sum(a22); y2[3] = Vector512.Sum(a23);
        y3[0] = Vector512.Sum(a30); y3[1] = Vector512.Sum(a31); y3[2] = Vector512.Sum(a32); y3[3] = Vector512.Sum(a33);
        if (i < k)
        {
            // Tail of K that is not a whole vector: finish each of the 16 sums in scalar code.
            for (int t = 0; t < 4; t++)
                for (int r = 0; r < 4; r++)
                {
                    float s = 0;
                    for (int j = i; j < k; j++) s += x[t * k + j] * TW.At(w, at + r * k + j);
                    y[t * n + r] += s;
                }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile1x4<TW>(float* x, int k, void* w, long at, float* y) where TW : struct, IWeightElements
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        long w0 = at, w1 = at + k, w2 = at + 2 * k, w3 = at + 3 * k;
        int i = 0;
        // 32 columns a step (TW.Load32: an MX block's scale is read once), each accumulator still adding the
        // columns 16 at a time in order: the same sums as 16 a step.
        for (; i + 32 <= k; i += 32)
        {
            if (Sse.IsSupported)
            {
                // The next tile's rows, at the same column: a row is only a few KiB, too short a stream for the
                // hardware prefetcher to get ahead of (see docs/performance.md#narrow-float-weights).
                long ahead = 4L * k + i;
                TW.Prefetch(w, w0 + ahead); TW.Prefetch(w, w1 + ahead); TW.Prefetch(w, w2 + ahead); TW.Prefetch(w, w3 + ahead);
                if (TW.BytesPer32 > 64)
                {
                    TW.Prefetch(w, w0 + ahead + 16); TW.Prefetch(w, w1 + ahead + 16); TW.Prefetch(w, w2 + ahead + 16); TW.Prefetch(w, w3 + ahead + 16);
                }
            }
            var u = Vector512.Load(x + i);
            var v = Vector512.Load(x + i + 16);
            TW.Load32(w, w0 + i, out var l0, out var h0);
            a0 = Vector512.FusedMultiplyAdd(v, h0, Vector512.FusedMultiplyAdd(u, l0, a0));
            TW.Load32(w, w1 + i, out var l1, out var h1);
            a1 = Vector512.FusedMultiplyAdd(v, h1, Vector512.FusedMultiplyAdd(u, l1, a1));
            TW.Load32(w, w2 + i, out var l2, out var h2);
            a2 = Vector512.FusedMultiplyAdd(v, h2, Vector512.FusedMultiplyAdd(u, l2, a2));
            TW.Load32(w, w3 + i, out var l3, out var h3);
            a3 = Vector512.FusedMultiplyAdd(v, h3, Vector512.FusedMultiplyAdd(u, l3, a3));
        }
        for (; i + 16 <= k; i += 16)
        {
            var u = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(u, TW.Load16(w, w0 + i), a0);
            a1 = Vector512.FusedMultiplyAdd(u, TW.Load16(w, w1 + i), a1);
            a2 = Vector512.FusedMultiplyAdd(u, TW.Load16(w, w2 + i), a2);
            a3 = Vector512.FusedMultiplyAdd(u, TW.Load16(w, w3 + i), a3);
        }
        y[0] = Vector512.Sum(a0); y[1] = Vector512.Sum(a1); y[2] = Vector512.Sum(a2); y[3] = Vector512.Sum(a3);
        for (; i < k; i++)
        {
            y[0] += x[i] * TW.At(w, w0 + i); y[1] += x[i] * TW.At(w, w1 + i);
            y[2] += x[i] * TW.At(w, w2 + i); y[3] += x[i] * TW.At(w, w3 + i);
        }
    }
}
