namespace AnyBit.Kernels;

/// <summary>
/// Y = X·Wᵀ for a <see cref="NarrowMatrix"/> W: <see cref="MatMulF32"/>'s work items and tiles, each weight widened
/// to its float32 value as the tile loads it. The same values meet the same tiles in the same order as on the
/// float32 copy, so the outputs are the same bits; a decode step reads 2 bytes per weight (F16, BF16), 1.03
/// (MXFP8) or 1.125 (FP8 blocks with a float32 scale) instead of 4.
/// </summary>
public sealed unsafe class MatMulNarrow : IParallelWork
{
    private RowRuns _runs; // as MatMulF32's, so that 4-row tiles start at the same rows
    private float* _x, _y;
    private NarrowMatrix? _w;
    private int _tokens;

    /// <summary>Computes Y = X·Wᵀ (Y is [tokens, W.Rows]) on <paramref name="pool"/>.</summary>
    public void Run(WorkerPool pool, float* x, int tokens, NarrowMatrix w, float* y)
    {
        _x = x; _y = y; _w = w; _tokens = tokens;
        pool.Run(this, _runs.Plan(w.Rows, pool.WorkerCount));
        _w = null;
    }

    public void Execute(int item, int worker)
    {
        var w = _w!;
        var (r0, r1) = _runs[item];
        switch (w.Kind)
        {
            case NarrowKind.F16: MatMulF32.Rows<F16Elements>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1); break;
            case NarrowKind.BF16: MatMulF32.Rows<BF16Elements>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1); break;
            case NarrowKind.MxE4M3: MatMulF32.Rows<Fp8BlockElements<E4M3Bits, E8M0Block>>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1); break;
            case NarrowKind.ScaledE4M3: MatMulF32.Rows<Fp8BlockElements<E4M3Bits, Float32Block>>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1); break;
            default: MatMulF32.Rows<Fp8BlockElements<E5M2Bits, E8M0Block>>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1); break;
        }
    }
}
