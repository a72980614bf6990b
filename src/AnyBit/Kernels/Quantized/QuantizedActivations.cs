using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Linear-layer inputs quantized to int8 so that the weight kernels can use integer dot products (llama.cpp's
/// q8_0 / q8_K activations, BitNet's A8). Each token's row is cut into blocks of <see cref="BlockSize"/> values
/// (32 for the legacy ggml types, 256 for K-quants and ternary types, whose integer sub-scales are summed across a
/// super-block) with one float scale per block; the integer sum of every 16 codes is kept for the weight formats
/// whose codes carry an offset (Q4_0's −8, Q6_K's −32, the mins of Q2_K and Q4_K...), as int16 (|Σ| ≤ 16·127): two
/// adjacent sums are then one 32-bit load, the int16 pair a multiply-add meets. Per 32 codes the sums of the two
/// column sets a vpmaddubsw lane pair keeps apart (<see cref="LaneSums"/>) are kept too.
/// </summary>
public sealed unsafe class QuantizedActivations : IDisposable
{
    private readonly sbyte* _codes;
    private readonly float* _scales;
    private readonly short* _sums16;
    private readonly int* _laneSums;

    public QuantizedActivations(int maxTokens, int maxColumns, int blockSize)
    {
        if (blockSize % 32 != 0) throw new ArgumentException("block size must be a multiple of 32", nameof(blockSize));
        MaxTokens = Math.Max(1, maxTokens); MaxColumns = maxColumns; BlockSize = blockSize;
        long n = (long)MaxTokens * maxColumns;
        _codes = (sbyte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, n), 64);
        _scales = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, n / blockSize * sizeof(float) + 64), 64);
        _sums16 = (short*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, n / 16 * sizeof(short) + 64), 64);
        _laneSums = (int*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, n / 32 * sizeof(int) + 64), 64);
    }

    public int MaxTokens { get; }
    public int MaxColumns { get; }
    public int BlockSize { get; }
    /// <summary>Columns of the rows quantized last.</summary>
    public int Columns { get; private set; }
    public int Tokens { get; private set; }

    /// <summary>The codes of token <paramref name="t"/>.</summary>
    public sbyte* Codes(int t) => _codes + (long)t * Columns;
    /// <summary>One scale per block of token <paramref name="t"/>: value ≈ scale × code.</summary>
    public float* Scales(int t) => _scales + (long)t * (Columns / BlockSize);
    /// <summary>Σ codes over each run of 16 of token <paramref name="t"/>.</summary>
    public short* Sums16(int t) => _sums16 + (long)t * (Columns / 16);
    /// <summary>
    /// Per 32 codes of token <paramref name="t"/>, the int16 pair (Σ of the codes at columns 4k and 4k+1, Σ of those at
    /// 4k+2 and 4k+3) as one int32: the columns whose products vpmaddubsw sums into the even and the odd int16 lane of
    /// a pair when 4 codes are broadcast per 32-bit lane (as the interleaved kernels do). |Σ| ≤ 16·127.
    /// </summary>
    public int* LaneSums(int t) => _laneSums + (long)t * (Columns / 32);

    /// <summary>
    /// Quantizes <paramref name="tokens"/> rows of <paramref name="columns"/> floats. Each block's scale is its
    /// largest magnitude / 127 and codes are round-half-even(x / scale). With <paramref name="perTokenScale"/> every
    /// block of a row uses the row's scale instead: BitNet's activations are already int8 per token, and a shared
    /// scale keeps their codes exact.
    /// </summary>
    public void Quantize(float* x, int tokens, int columns, bool perTokenScale = false)
    {
        Prepare(tokens, columns);
        for (int t = 0; t < tokens; t++) QuantizeRow(x, t, perTokenScale);
    }

    /// <summary>
    /// What the codes were made from, for <see cref="QuantizedMatMul"/>'s reuse across Q/K/V and gate/up: the source
    /// pointer, shape, scale mode and the product's input number. Kept with the buffer, so a new buffer matches nothing.
    /// </summary>
    internal (nint Source, int Tokens, int Columns, bool PerToken, long Input) MadeFrom { get; set; } = (0, 0, 0, false, -1);

    /// <summary>Sets the shape of the rows about to be quantized by <see cref="QuantizeRow"/>.</summary>
    public void Prepare(int tokens, int columns)
    {
        if (tokens > MaxTokens || columns > MaxColumns) throw new ArgumentException("more activations than the buffer holds");
        if (columns % BlockSize != 0) throw new ArgumentException($"{columns} columns are not whole blocks of {BlockSize}");
        Tokens = tokens; Columns = columns;
    }

    /// <summary>
    /// Quantizes row <paramref name="t"/> of <paramref name="x"/> (rows of <see cref="Columns"/> floats). Rows are
    /// independent, so a prompt's rows may be quantized on several threads at once.
    /// </summary>
    public void QuantizeRow(float* x, int t, bool perTokenScale)
    {
        int columns = Columns;
        var row = new ReadOnlySpan<float>(x + (long)t * columns, columns);
        float rowScale = perTokenScale ? ScaleOf(row) : 0;
        sbyte* q = Codes(t);
        float* s = Scales(t);
        short* sums = Sums16(t);
        for (int b = 0; b < columns / BlockSize; b++)
        {
            var block = row.Slice(b * BlockSize, BlockSize);
            float d = perTokenScale ? rowScale : ScaleOf(block);
            s[b] = d;
            ActivationQuantizer.Codes(block, d, new Span<sbyte>(q + b * BlockSize, BlockSize));
        }
        for (int g = 0; g < columns / 16; g++) sums[g] = (short)Sum16(q + 16 * g);
        int* lanes = LaneSums(t);
        for (int b = 0; b < columns / 32; b++) lanes[b] = LaneSum32(q + 32 * b);
    }

    /// <summary><see cref="LaneSums"/> of 32 codes: (Σ q[4k] + q[4k+1]) | (Σ q[4k+2] + q[4k+3]) &lt;&lt; 16.</summary>
    internal static int LaneSum32(sbyte* q)
    {
        int even = 0, odd = 0;
        for (int k = 0; k < 32; k += 4)
        {
            even += q[k] + q[k + 1];
            odd += q[k + 2] + q[k + 3];
        }
        return (ushort)even | odd << 16;
    }

    /// <summary>Σ of 16 codes: widened to int16 and summed across the vector (exact: |Σ| ≤ 16·127).</summary>
    private static int Sum16(sbyte* q)
    {
        if (!Vector128.IsHardwareAccelerated)
        {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[i];
            return sum;
        }
        var (lo, hi) = Vector128.Widen(Vector128.Load(q));
        return Vector128.Sum(lo + hi);
    }

    private static float ScaleOf(ReadOnlySpan<float> values) => MathF.Abs(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(values)) / 127f;

    public void Dispose()
    {
        NativeMemory.AlignedFree(_codes);
        NativeMemory.AlignedFree(_scales);
        NativeMemory.AlignedFree(_sums16);
        NativeMemory.AlignedFree(_laneSums);
    }
}
