using BenchmarkDotNet.Attributes;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Benchmarks;

/// <summary>
/// The lookup-table kernels (T-MAC bit-serial; for TQ2_0 also the ternary base-3 one) against the int8 dot-product
/// kernel on the same int1–int4 or TQ2_0 weights: one
/// decode-shaped product per case and shape, the matrix from memory (16 copies cycled) or one matrix over and over
/// (from cache, where the arithmetic shows). <see cref="BitSerialMatrix.Preferred"/> and
/// <see cref="TernaryTableMatrix.Preferred"/> follow what this measures.
/// </summary>
[ShortRunJob]
public unsafe class LookupTableBenchmarks
{
    /// <summary>rows × columns: an FFN up/gate projection, its down projection, and a GQA key/value projection of a 1B model.</summary>
    [Params("5632x2048", "2048x5632", "512x2048")]
    public string Shape { get; set; } = "5632x2048";

    private int Rows => int.Parse(Shape.Split('x')[0]);
    private int Columns => int.Parse(Shape.Split('x')[1]);

    [Params("int1:g64:sym", "int2:g32:sym", "int2:g128:asym", "int3:g64:asym", "int4:g32:asym", "tq2_0")]
    public string Format { get; set; } = "int2:g32:sym";

    /// <summary>TernaryTable holds only TQ2_0 (the int formats fall back to Interleaved there: rows to skip).</summary>
    [Params(MatrixLayout.Interleaved, MatrixLayout.BitSerial, MatrixLayout.TernaryTable)]
    public MatrixLayout Layout { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>16: the weights come from memory, as in decoding; 1: from cache.</summary>
    [Params(1, 16)]
    public int Copies { get; set; }

    /// <summary>1: a decode step; 8: a short prefill.</summary>
    [Params(1, 8)]
    public int Tokens { get; set; }

    private PackedMatrix[] _packed = [];
    private NativeBuffer _x = null!, _y = null!;
    private WorkerPool _pool = null!;
    private QuantizedMatMul _quantized = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var w = new float[Rows * Columns];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
        var format = FormatRegistry.Parse(Format);
        var bytes = new byte[format.ByteSize(w.Length)];
        format.Quantize(w, Columns, bytes);
        _packed = Enumerable.Range(0, Copies).Select(_ => PackedMatrix.Create(format, default, Rows, Columns, bytes, keepSource: false, Layout)).ToArray();
        _x = new NativeBuffer(Tokens * Columns);
        for (int i = 0; i < _x.Span.Length; i++) _x.Span[i] = (float)(rng.NextDouble() * 2 - 1);
        _y = new NativeBuffer(Tokens * Rows);
        _pool = new WorkerPool(Threads);
        _quantized = new QuantizedMatMul(Tokens);
    }

    [Benchmark]
    public void MatMul() =>
        _quantized.Run(_pool, _x.Pointer, Tokens, _packed[_next++ % Copies], _y.Pointer, KernelMode.Fast, perTokenScale: false);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var p in _packed) p.Dispose();
        _x.Dispose(); _y.Dispose(); _quantized.Dispose(); _pool.Dispose();
    }
}
