namespace AnyBit.Quantization.Methods;

/// <summary>
/// <see cref="IColumnRounder"/> for the scalar block formats (<see cref="IFixedScaleRounding"/>): GPTQ with static
/// groups, as AutoGPTQ's static_groups. Every block's parameters are fitted once, up front, by the format's own
/// quantizer (weighted by the columns' importance, the Hessian diagonal, where the format has a weighted fit) on
/// the original weights; each weight is then rounded to the nearest value representable under those parameters, and
/// <see cref="Encode"/> writes exactly those codes under exactly those parameters, so the bytes decode to the values
/// GPTQ worked with. <see cref="Fit"/> does nothing: refitting a block from error-corrected values moves its scales
/// while it is being filled, and a fresh scale search at the end stores values GPTQ never saw.
/// Among equally near values the fitted code is kept (a zero-step sub-block keeps the format's codes), so with no
/// error feedback the bytes are the format's own wherever its code was a nearest one; the formats that choose codes
/// against the unrounded float scale (the legacy types, IQ4) differ where the f16 scale moved a boundary, and there
/// this rounder's value is strictly nearer.
/// </summary>
public sealed class FixedScaleRounder : IColumnRounder
{
    private readonly TensorFormat _format;
    private readonly IFixedScaleRounding _grid;
    private readonly int _columns;
    private readonly byte[] _fitted;
    private readonly float[] _step, _shift, _levels;
    private readonly byte[] _codes;

    /// <summary>Fits every block of <paramref name="weights"/> (the original weights, rows × columns) with the format's
    /// quantizer, weighted by <paramref name="importance"/> (one value per column) when given.</summary>
    public FixedScaleRounder(TensorFormat format, ReadOnlySpan<float> weights, int rows, int columns, float[]? importance)
    {
        _grid = format as IFixedScaleRounding ?? throw new ArgumentException($"{format.Name} has no fixed-scale rounding", nameof(format));
        _format = format;
        _columns = columns;
        _levels = _grid.Levels;
        _fitted = new byte[format.ByteSize((long)rows * columns)];
        if (importance is null) format.Quantize(weights, columns, _fitted);
        else format.Quantize(weights, columns, _fitted, importance);
        long n = (long)rows * columns;
        _codes = new byte[n];
        _step = new float[n / 16];
        _shift = new float[n / 16];
        int blockSize = format.BlockSize, bytes = format.BytesPerBlock;
        Parallel.For(0, (int)(n / blockSize), b =>
            _grid.ReadBlock(_fitted.AsSpan(b * bytes, bytes), _step.AsSpan(b * blockSize / 16, blockSize / 16),
                _shift.AsSpan(b * blockSize / 16, blockSize / 16), _codes.AsSpan(b * blockSize, blockSize)));
    }

    public int GroupSize => _format.BlockSize;

    public void Fit(int row, int group, ReadOnlySpan<float> values) { }

    public float Round(int row, int column, float value)
    {
        long i = (long)row * _columns + column;
        float step = _step[i / 16], shift = _shift[i / 16];
        int code = Nearest(value, step, shift, _codes[i]);
        _codes[i] = (byte)code;
        return step * _levels[code] - shift;
    }

    /// <summary>
    /// The code whose value step·level − shift (as the dequantizer evaluates it) is nearest <paramref name="x"/>; ties
    /// keep <paramref name="fitted"/>, else the lower code. Levels ascend, so the values are monotone in the code:
    /// the level nearest (x + shift)/step and its neighbours hold the answer.
    /// </summary>
    private int Nearest(float x, float step, float shift, int fitted)
    {
        var levels = _levels;
        int n = levels.Length;
        if (step == 0 || !float.IsFinite(x)) return fitted;
        float t = (x + shift) / step;
        int lo = 0, hi = n; // first level ≥ t
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (levels[mid] < t) lo = mid + 1; else hi = mid;
        }
        int best = -1;
        float bestError = float.PositiveInfinity;
        for (int k = Math.Max(0, lo - 2); k <= Math.Min(n - 1, lo + 1); k++)
        {
            float e = MathF.Abs(x - (step * levels[k] - shift));
            if (e < bestError || (e == bestError && k == fitted)) { bestError = e; best = k; }
        }
        return best;
    }

    public byte[] Encode()
    {
        var bytes = (byte[])_fitted.Clone();
        int blockSize = _format.BlockSize, blockBytes = _format.BytesPerBlock;
        Parallel.For(0, bytes.Length / blockBytes, b =>
            _grid.WriteCodes(bytes.AsSpan(b * blockBytes, blockBytes), _codes.AsSpan(b * blockSize, blockSize)));
        return bytes;
    }
}
