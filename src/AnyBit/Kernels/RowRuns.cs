using AnyBit.Kernels.Quantized;

namespace AnyBit.Kernels;

/// <summary>
/// The float matrix products' work items: runs of 16-row blocks split as <see cref="QuantizedMatMul.Schedule"/>
/// splits row groups (a long contiguous run per worker for the prefetchers, then short items to even out the end).
/// Items of one 16-row block each, handed out alternately, left two threads reading F16 weights at half the
/// integer kernels' bandwidth (see docs/performance.md#narrow-float-weights). Every item starts at a multiple of 16 rows, so the 4-row tiles start at the same
/// rows whatever the split: the same bits.
/// </summary>
internal struct RowRuns
{
    public const int BlockRows = 16;
    private int[] _bounds;
    private int _rows;

    /// <summary>Splits <paramref name="rows"/> for <paramref name="workers"/> and returns the item count.</summary>
    public int Plan(int rows, int workers)
    {
        _bounds ??= new int[16];
        _rows = rows;
        return QuantizedMatMul.Schedule((rows + BlockRows - 1) / BlockRows, 1, workers, ref _bounds);
    }

    /// <summary>Item <paramref name="item"/>'s rows [r0, r1).</summary>
    public readonly (int R0, int R1) this[int item] =>
        (_bounds[item] * BlockRows, Math.Min(_rows, _bounds[item + 1] * BlockRows));
}
