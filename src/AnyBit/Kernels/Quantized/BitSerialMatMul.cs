using System.Runtime.InteropServices;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Y = X·Wᵀ for a lookup-table matrix (<see cref="BitSerialMatrix"/>, <see cref="TernaryTableMatrix"/>) on the pool: each token's lookup tables are built once (on the pool
/// when there are several tokens), then the tiles (32 or 64 rows) are shared out as <see cref="QuantizedMatMul"/> shares its
/// groups, each tile meeting every token of the chunk while its codes are in cache.
/// </summary>
internal sealed unsafe class BitSerialMatMul : IParallelWork, IDisposable
{
    // Tokens whose tables are held at once: 16 × 8 bytes per column (a 5632-column input: 720 KiB).
    private const int ChunkTokens = 16;
    private short* _tables;
    private int* _totals;
    private long _tableCapacity, _totalCapacity;
    private int[] _bounds = new int[16];
    private ILookupTableMatrix? _m;
    private QuantizedActivations? _x;
    private float* _y;
    private int _n, _first, _count;
    private bool _building;

    /// <summary>
    /// Y = X·Wᵀ. Where the previous call built its tables from these very codes (<paramref name="x"/> made from the
    /// same input, <see cref="QuantizedActivations.MadeFrom"/>: Q, K and V; gate and up) for the same kind of matrix
    /// and width, in one chunk, they are used again rather than rebuilt — a decode step builds them on one thread
    /// while the other waits.
    /// </summary>
    public void Run(WorkerPool pool, ILookupTableMatrix m, QuantizedActivations x, int tokens, float* y, int n)
    {
        bool reuse = tokens <= ChunkTokens && _built is { } b && b.Layout == m.GetType() && b.Kind == m.Kind
            && b.Columns == m.Columns && b.Tokens == tokens && ReferenceEquals(b.Activations, x) && b.Codes == x.MadeFrom;
        _built = null;
        Reserve(Math.Min(tokens, ChunkTokens), m.TableLength, m.Blocks);
        _m = m; _x = x; _y = y; _n = n;
        for (_first = 0; _first < tokens; _first += _count)
        {
            _count = Math.Min(ChunkTokens, tokens - _first);
            _building = true;
            if (reuse) { }
            else if (_count == 1 || pool.WorkerCount == 1) for (int u = 0; u < _count; u++) Execute(u, 0);
            else pool.Run(this, _count);
            _building = false;
            pool.Run(this, QuantizedMatMul.Schedule(m.Tiles, 1, pool.WorkerCount, ref _bounds));
        }
        if (tokens <= ChunkTokens) _built = new Built(m.GetType(), m.Kind, m.Columns, tokens, x, x.MadeFrom);
        _m = null; _x = null;
    }

    /// <summary>What the tables now held were built for (one chunk's worth of tokens).</summary>
    private sealed record Built(Type Layout, PackedKind Kind, int Columns, int Tokens, QuantizedActivations Activations,
        (nint Source, int Tokens, int Columns, bool PerToken, long Input) Codes);
    private Built? _built;

    private short* Tables(int u) => _tables + (long)u * _m!.TableLength;
    private int* Totals(int u) => _totals + (long)u * _m!.Blocks;

    public void Execute(int item, int worker)
    {
        var m = _m!; var x = _x!;
        if (_building)
        {
            int t = _first + item;
            m.BuildTables(x.Codes(t), x.Sums16(t), Tables(item), Totals(item));
            return;
        }
        for (int tile = _bounds[item]; tile < _bounds[item + 1]; tile++)
        {
            int rows = Math.Min(m.TileRows, m.Rows - tile * m.TileRows);
            for (int u = 0; u < _count; u++)
                m.MultiplyTile(tile, Tables(u), Totals(u), x.Scales(_first + u), _y + (long)(_first + u) * _n + tile * m.TileRows, rows);
        }
    }

    private void Reserve(int tokens, int tableLength, int blocks)
    {
        // (Reallocating drops what was built: the caller cleared _built before calling.)
        long tables = (long)tokens * tableLength, totals = (long)tokens * blocks;
        if (tables > _tableCapacity)
        {
            NativeMemory.AlignedFree(_tables);
            _tables = (short*)NativeMemory.AlignedAlloc((nuint)(tables * sizeof(short)), 64);
            _tableCapacity = tables;
        }
        if (totals > _totalCapacity)
        {
            NativeMemory.AlignedFree(_totals);
            _totals = (int*)NativeMemory.AlignedAlloc((nuint)(totals * sizeof(int)), 64);
            _totalCapacity = totals;
        }
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_tables); _tables = null; _tableCapacity = 0;
        NativeMemory.AlignedFree(_totals); _totals = null; _totalCapacity = 0;
    }
}
