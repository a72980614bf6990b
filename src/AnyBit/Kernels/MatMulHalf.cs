namespace AnyBit.Kernels;

/// <summary>
/// Y = X·Wᵀ for a <see cref="HalfMatrix"/> W: <see cref="MatMulF32"/>'s work items and tiles, each weight widened
/// to its float32 value as the tile loads it. The same values meet the same tiles in the same order as on the
/// float32 copy, so the outputs are the same bits; a decode step reads 2 bytes per weight instead of 4.
/// </summary>
public sealed unsafe class MatMulHalf : IParallelWork
{
    private RowRuns _runs; // as MatMulF32's, so that 4-row tiles start at the same rows
    private float* _x, _y;
    private HalfMatrix? _w;
    private int _tokens;

    /// <summary>Computes Y = X·Wᵀ (Y is [tokens, W.Rows]) on <paramref name="pool"/>.</summary>
    public void Run(WorkerPool pool, float* x, int tokens, HalfMatrix w, float* y)
    {
        _x = x; _y = y; _w = w; _tokens = tokens;
        pool.Run(this, _runs.Plan(w.Rows, pool.WorkerCount));
        _w = null;
    }

    public void Execute(int item, int worker)
    {
        var w = _w!;
        var (r0, r1) = _runs[item];
        if (w.Kind == HalfKind.F16) MatMulF32.Rows<F16Elements>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1);
        else MatMulF32.Rows<BF16Elements>(_x, _tokens, w.Columns, w.Pointer, w.Rows, _y, r0, r1);
    }
}
