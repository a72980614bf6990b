namespace AnyBit.Quantization.Methods;

/// <summary>
/// A format's rounding, one weight at a time, against parameters fitted on a group of a row: what GPTQ needs so
/// that error compensation works with any format. <see cref="Fit"/> sets a group's parameters (scale, zero point...)
/// from the group's current values; <see cref="Round"/> gives the representable value nearest a weight under them.
/// </summary>
public interface IColumnRounder
{
    /// <summary>Columns that share parameters.</summary>
    int GroupSize { get; }

    /// <summary>Fits the parameters of group <paramref name="group"/> of <paramref name="row"/> from its current values.</summary>
    void Fit(int row, int group, ReadOnlySpan<float> values);

    /// <summary>Rounds the weight at (<paramref name="row"/>, <paramref name="column"/>) under its group's parameters; records the result.</summary>
    float Round(int row, int column, float value);

    /// <summary>The tensor's bytes in the format, from the recorded results.</summary>
    byte[] Encode();
}

/// <summary>Which rounder GPTQ uses for a format.</summary>
public static class ColumnRounders
{
    /// <summary>
    /// Integer formats round with their own group fit; the scalar block formats (<see cref="IFixedScaleRounding"/>)
    /// with their blocks' parameters fitted once from <paramref name="weights"/>, weighted by
    /// <paramref name="importance"/>; the rest (the lattice i-quants) by re-quantizing the block around each weight,
    /// weighted by <paramref name="blockImportance"/>.
    /// </summary>
    public static IColumnRounder For(TensorFormat format, ReadOnlySpan<float> weights, int rows, int columns, float[]? importance, float[]? blockImportance) =>
        format is IntFormat integer ? new IntColumnRounder(integer, rows, columns)
        : format is IFixedScaleRounding ? new FixedScaleRounder(format, weights, rows, columns, importance)
        : new BlockColumnRounder(format, rows, columns, blockImportance);
}

/// <summary>
/// <see cref="IColumnRounder"/> for integer formats: exactly IntFormat's parameter fit and rounding, with codes
/// kept so that the encoded bytes hold precisely the values GPTQ chose.
/// </summary>
public sealed class IntColumnRounder(IntFormat format, int rows, int columns) : IColumnRounder
{
    private readonly float[] _scale = new float[rows * (columns / format.GroupSize)];
    private readonly int[] _zero = new int[rows * (columns / format.GroupSize)];
    private readonly int[] _codes = new int[(long)rows * columns];
    private readonly int _groups = columns / format.GroupSize;

    public int GroupSize => format.GroupSize;

    public void Fit(int row, int group, ReadOnlySpan<float> values)
    {
        var (s, z) = format.FitGroup(values);
        _scale[row * _groups + group] = s;
        _zero[row * _groups + group] = z;
    }

    public float Round(int row, int column, float value)
    {
        int g = row * _groups + column / format.GroupSize;
        int code = format.Code(value, _scale[g], _zero[g]);
        _codes[(long)row * columns + column] = code;
        return format.Value(code, _scale[g], _zero[g]);
    }

    public byte[] Encode()
    {
        int blockBytes = format.BytesPerBlock;
        var bytes = new byte[(long)rows * _groups * blockBytes];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < _groups; g++)
                format.WriteBlock(_scale[r * _groups + g], _zero[r * _groups + g],
                    _codes.AsSpan((int)((long)r * columns + g * format.GroupSize), format.GroupSize),
                    bytes.AsSpan((int)(((long)r * _groups + g) * blockBytes), blockBytes));
        return bytes;
    }
}

/// <summary>
/// <see cref="IColumnRounder"/> for any block format (used for those without <see cref="IFixedScaleRounding"/>): a weight is rounded by quantizing its whole block (with the
/// columns already decided and the others as they stand now) through the format's own quantizer and reading the
/// weight back. The result is re-encoded block by block at the end, so the bytes are the format's own. With
/// <paramref name="importance"/> (one value per column) every block is quantized weighted by it.
/// </summary>
public sealed class BlockColumnRounder(TensorFormat format, int rows, int columns, float[]? importance = null) : IColumnRounder
{
    private readonly float[] _current = new float[(long)rows * columns];

    public int GroupSize => format.BlockSize;

    public void Fit(int row, int group, ReadOnlySpan<float> values) => values.CopyTo(_current.AsSpan((int)((long)row * columns + group * format.BlockSize), format.BlockSize));

    public float Round(int row, int column, float value)
    {
        int start = column / format.BlockSize * format.BlockSize;
        var block = _current.AsSpan((int)((long)row * columns + start), format.BlockSize);
        block[column - start] = value;
        Span<byte> bytes = stackalloc byte[format.BytesPerBlock];
        Span<float> back = format.BlockSize <= 1024 ? stackalloc float[format.BlockSize] : new float[format.BlockSize];
        if (importance is null) format.QuantizeRow(block, bytes);
        else format.QuantizeRow(block, bytes, importance.AsSpan(start, format.BlockSize));
        format.Dequantize(bytes, back);
        block[column - start] = back[column - start];
        return back[column - start];
    }

    public byte[] Encode()
    {
        var bytes = new byte[format.ByteSize((long)rows * columns)];
        format.Quantize(_current, columns, bytes, importance);
        return bytes;
    }
}
