using BenchmarkDotNet.Attributes;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Benchmarks;

/// <summary>
/// One decode-shaped matrix-vector product (5632 × 2048, an FFN projection of a 1B model) per weight format: the
/// integer kernels on packed weights against the float32 GEMM on the same weights dequantized, side by side in one
/// run. Sixteen distinct matrices are cycled so the weights come from memory, as in decoding, not from cache.
/// </summary>
[MemoryDiagnoser]
public unsafe class MatVecBenchmarks
{
    private const int Rows = 5632, Columns = 2048, Copies = 16;

    /// <summary>The formats to run: ANYBIT_BENCH_FORMATS (comma-separated) where set, else every kernel family.</summary>
    public static IEnumerable<string> Formats() =>
        Environment.GetEnvironmentVariable("ANYBIT_BENCH_FORMATS") is { Length: > 0 } list
            ? list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : ["q4_0", "q8_0", "q4_k", "q6_k", "q2_k", "q3_k", "tq2_0", "tq1_0", "int4:g32", "int3:g64", "int2:g128", "iq4_nl", "iq4_xs", "nf4:g64", "mxfp6_e2m3", "mxfp6_e3m2"];

    [ParamsSource(nameof(Formats))]
    public string Format { get; set; } = "q4_0";

    /// <summary>The thread counts to run: ANYBIT_BENCH_THREADS (comma-separated) where set, else 1 and 2.</summary>
    public static IEnumerable<int> ThreadCounts() =>
        Environment.GetEnvironmentVariable("ANYBIT_BENCH_THREADS") is { Length: > 0 } list ? list.Split(',').Select(int.Parse) : [1, 2];

    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; }

    private PackedMatrix[] _packed = [];
    private NativeBuffer[] _dense = [];
    private NativeBuffer _x = null!, _y = null!;
    private WorkerPool _pool = null!;
    private QuantizedMatMul _quantized = null!;
    private readonly MatMulF32 _f32 = new();
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
        var decoded = new float[w.Length];
        format.Dequantize(bytes, decoded);
        _packed = Enumerable.Range(0, Copies).Select(_ => PackedMatrix.Create(format, default, Rows, Columns, bytes)).ToArray();
        _dense = Enumerable.Range(0, Copies / 4).Select(_ => new NativeBuffer(decoded)).ToArray();
        _x = new NativeBuffer(Columns);
        for (int i = 0; i < Columns; i++) _x.Span[i] = (float)(rng.NextDouble() * 2 - 1);
        _y = new NativeBuffer(Rows);
        _pool = new WorkerPool(Threads);
        _quantized = new QuantizedMatMul(1);
    }

    [Benchmark(Description = "integer kernel, packed weights")]
    public void Packed() =>
        _quantized.Run(_pool, _x.Pointer, 1, _packed[_next++ % Copies], _y.Pointer, KernelMode.Fast, perTokenScale: false);

    [Benchmark(Baseline = true, Description = "f32 GEMM, dequantized weights")]
    public void Float32() =>
        _f32.Run(_pool, _x.Pointer, 1, Columns, _dense[_next++ % _dense.Length].Pointer, Rows, _y.Pointer);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var p in _packed) p.Dispose();
        foreach (var d in _dense) d.Dispose();
        _x.Dispose(); _y.Dispose(); _quantized.Dispose(); _pool.Dispose();
    }
}
