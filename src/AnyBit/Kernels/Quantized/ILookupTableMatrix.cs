namespace AnyBit.Kernels.Quantized;

/// <summary>
/// A matrix held for a lookup-table kernel: per token, tables built once from the int8 activations; per tile of
/// <see cref="TileRows"/> rows, the kernel looks the rows' partial sums up in them (<see cref="BitSerialMatMul"/>
/// runs either kind on the pool).
/// </summary>
internal unsafe interface ILookupTableMatrix : IDisposable
{
    /// <summary>Rows per tile: 32 (one 512-bit vector of int16 rows), or 64 where two halves share each table load.</summary>
    int TileRows { get; }
    /// <summary>The weight kind (with the layout's type and the width, what a token's tables depend on).</summary>
    PackedKind Kind { get; }
    int Rows { get; }
    int Columns { get; }
    int Tiles { get; }
    /// <summary>Groups (scale blocks) per row: room for one Σx per group and token in the totals.</summary>
    int Blocks { get; }
    long ByteLength { get; }
    /// <summary>The instruction set and method, for the matrix's <see cref="KernelChoice"/> (its tiles: <see cref="TileRows"/>).</summary>
    string Path { get; }
    /// <summary>int16 entries of one token's tables.</summary>
    int TableLength { get; }
    /// <summary>One token's tables, and per group Σx into <paramref name="totals"/> where the kernel needs it.</summary>
    void BuildTables(sbyte* x, short* sums16, short* tables, int* totals);
    /// <summary>y[r] = Σ_k W[r, k]·x[k] for the <paramref name="rows"/> (≤ TileRows) rows of tile <paramref name="tile"/>, one token.</summary>
    void MultiplyTile(int tile, short* tables, int* totals, float* dx, float* y, int rows);
}
