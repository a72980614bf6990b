using System.Runtime.Intrinsics.X86;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The T-MAC bit-serial lookup-table kernel against the scalar reference (which reads the file's bytes, not the
/// bit planes), bit for bit. It needs AVX-512 BW; on a CPU without it the layout must not be chosen, which is tested
/// instead.
/// </summary>
public unsafe class BitSerialKernelTests
{
    /// <summary>Every plane count (1-bit signs and asymmetric 1-bit, 2, 3, 4), every group size, both zero-point kinds,
    /// and the ternary ggml types.</summary>
    public static TheoryData<string> Specs() =>
    [
        "int1:g32:sym", "int1:g64:asym", "int2:g32:sym", "int2:g128:asym", "int3:g64:sym", "int3:g256:asym",
        "int4:g32:asym", "int4:g256:sym", "TQ2_0", "TQ1_0",
    ];

    [Fact]
    public void Lanes_hold_every_row_of_a_tile_once_in_the_order_the_unpacks_restore()
    {
        var rows = Enumerable.Range(0, 32).Select(BitSerialMatrix.RowOfLane).ToArray();
        Assert.Equal(Enumerable.Range(0, 32), rows.Order());
        // vpunpcklwd takes words 0–3 of each 128-bit lane (lanes 8k..8k+3): they must be rows 4k..4k+3.
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal(4 * k + i, rows[8 * k + i]);
                Assert.Equal(16 + 4 * k + i, rows[8 * k + 4 + i]);
            }
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void Tile_kernel_matches_the_scalar_reference_bit_for_bit(string spec)
    {
        int rows = 45, cols = 768, tokens = 3; // a full tile and a padded one of 13 rows
        var (_, bytes) = QuantizedKernelTests.RandomMatrix(spec, rows, cols, 21);
        if (!Avx512BW.IsSupported)
        {
            using var fallback = QuantizedKernelTests.Pack(spec, rows, cols, bytes);
            Assert.Null(fallback.Lookup);
            return;
        }
        using var m = QuantizedKernelTests.Pack(spec, rows, cols, bytes, MatrixLayout.BitSerial);
        var bits = Assert.IsType<BitSerialMatrix>(m.Lookup);
        using var a = QuantizedKernelTests.RandomActivations(tokens, cols, m.ActivationBlock, 22, out _);
        var kernel = BitSerialKernel.For(bits);
        var tables = new short[BitSerialKernel.TableLength(cols)];
        var totals = new int[cols / bits.Group];
        var y = new float[BitSerialMatrix.TileRows + 1];
        for (int t = 0; t < tokens; t++)
        {
            fixed (short* pt = tables) fixed (int* ps = totals)
            {
                BitSerialKernel.BuildTables(a.Codes(t), a.Sums16(t), cols, bits.Group, pt, ps);
                for (int tile = 0; tile < bits.Tiles; tile++)
                {
                    int n = Math.Min(BitSerialMatrix.TileRows, rows - tile * BitSerialMatrix.TileRows);
                    Array.Fill(y, float.NaN);
                    fixed (float* py = y) kernel(bits, bits.Tile(tile), pt, ps, a.Scales(t), py, n);
                    for (int r = 0; r < n; r++) Assert.Equal(ReferenceKernel.Row(m, tile * BitSerialMatrix.TileRows + r, a, t), y[r]);
                    for (int r = n; r < y.Length; r++) Assert.True(float.IsNaN(y[r]), "a padded row was written");
                }
            }
        }
    }

    /// <summary>The ternary base-3 table kernel (bitnet.cpp TL2 style) against the reference, tile by tile, bit for bit.</summary>
    [Theory]
    [InlineData("TQ2_0")]
    [InlineData("TQ1_0")]
    public void Ternary_table_kernel_matches_the_scalar_reference_bit_for_bit(string spec)
    {
        int rows = 109, cols = 768, tokens = 3; // a full 64-row tile and one of 45 (a full half and a padded one)
        var (_, bytes) = QuantizedKernelTests.RandomMatrix(spec, rows, cols, 23);
        if (!Avx512BW.IsSupported) return; // not offered there (Supports)
        using var m = QuantizedKernelTests.Pack(spec, rows, cols, bytes, MatrixLayout.TernaryTable);
        var table = Assert.IsType<TernaryTableMatrix>(m.Lookup);
        using var a = QuantizedKernelTests.RandomActivations(tokens, cols, m.ActivationBlock, 24, out _);
        var tables = new short[table.TableLength];
        var totals = new int[table.Blocks];
        int tileRows = TernaryTableMatrix.TileRows;
        var y = new float[tileRows + 1];
        for (int t = 0; t < tokens; t++)
            fixed (short* pt = tables) fixed (int* ps = totals)
            {
                table.BuildTables(a.Codes(t), a.Sums16(t), pt, ps);
                for (int tile = 0; tile < table.Tiles; tile++)
                {
                    int n = Math.Min(tileRows, rows - tile * tileRows);
                    Array.Fill(y, float.NaN);
                    fixed (float* py = y) table.MultiplyTile(tile, pt, ps, a.Scales(t), py, n);
                    for (int r = 0; r < n; r++) Assert.Equal(ReferenceKernel.Row(m, tile * tileRows + r, a, t), y[r]);
                    for (int r = n; r < y.Length; r++) Assert.True(float.IsNaN(y[r]), "a padded row was written");
                }
            }
    }

    /// <summary>Every weight +1 (or −1) and every activation ±127: the largest sums the two int16 accumulators hold.</summary>
    [Theory]
    [InlineData(1f, 1f)]
    [InlineData(-1f, 1f)]
    [InlineData(1f, -1f)]
    public void Largest_ternary_sums_do_not_wrap(float weight, float activation)
    {
        if (!Avx512BW.IsSupported) return;
        int rows = 64, cols = 512;
        var format = FormatRegistry.Parse("tq2_0");
        var w = Enumerable.Repeat(weight, rows * cols).ToArray();
        var bytes = new byte[format.ByteSize(w.Length)];
        format.Quantize(w, cols, bytes);
        using var m = QuantizedKernelTests.Pack("TQ2_0", rows, cols, bytes, MatrixLayout.TernaryTable);
        var x = Enumerable.Repeat(activation, cols).ToArray();
        var (fast, reference) = QuantizedKernelTests.FastAndReference(m, x, 1, 1);
        Assert.Equal(reference, fast);
        Assert.Equal(weight * activation * cols, fast[0], 1);
    }

    [Theory]
    [InlineData("TQ2_0", 20, 3, MatrixLayout.TernaryTable)]
    [InlineData("int1:g64:sym", 1, 1)]
    [InlineData("int2:g32:asym", 5, 2)]
    [InlineData("int3:g128:asym", 20, 3)] // more tokens than one chunk of tables
    [InlineData("int4:g64:sym", 2, 2)]
    [InlineData("TQ1_0", 3, 2)]
    public void Matmul_on_the_pool_equals_the_reference_for_every_token(string spec, int tokens, int workers, MatrixLayout layout = MatrixLayout.BitSerial)
    {
        if (!Avx512BW.IsSupported) return; // the layout is not chosen there (Tile_kernel_... tests that)
        int rows = 300, cols = 512;
        var (_, bytes) = QuantizedKernelTests.RandomMatrix(spec, rows, cols, 8);
        using var m = QuantizedKernelTests.Pack(spec, rows, cols, bytes, layout);
        Assert.Contains(layout == MatrixLayout.BitSerial ? "bit-serial" : "base-3", m.KernelPath);
        var rng = new Random(9);
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var (fast, reference) = QuantizedKernelTests.FastAndReference(m, x, tokens, workers);
        Assert.Equal(reference, fast);
    }

    /// <summary>
    /// Tables are built once per input: Q, K and V read one input (sameInput), so K and V use Q's tables. A product
    /// of another layout on a new input in between requantizes the activations without touching the tables; the
    /// next sameInput product must then rebuild them, not reuse the stale ones (a Q4_0 Wq before a TQ2_0 Wk).
    /// </summary>
    [Theory]
    [InlineData(MatrixLayout.TernaryTable, 1)]
    [InlineData(MatrixLayout.BitSerial, 3)]
    public void Lookup_tables_are_reused_only_for_the_codes_they_were_built_from(MatrixLayout layout, int tokens)
    {
        if (!Avx512BW.IsSupported) return;
        int rows = 96, cols = 512;
        using var q = QuantizedKernelTests.Pack("TQ2_0", rows, cols, QuantizedKernelTests.RandomMatrix("TQ2_0", rows, cols, 40).Bytes, layout);
        using var k = QuantizedKernelTests.Pack("TQ2_0", rows, cols, QuantizedKernelTests.RandomMatrix("TQ2_0", rows, cols, 41).Bytes, layout);
        // The same activation block (256) as TQ2_0, another layout: it shares the activation buffer.
        using var other = QuantizedKernelTests.Pack("Q4_K", rows, cols, QuantizedKernelTests.RandomMatrix("Q4_K", rows, cols, 42).Bytes);
        Assert.NotNull(q.Lookup);
        Assert.Null(other.Lookup);
        Assert.Equal(q.ActivationBlock, other.ActivationBlock);
        var rng = new Random(43);
        float[] Input() => Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] a = Input(), b = Input();
        float[] Alone(PackedMatrix m, float[] x) => QuantizedKernelTests.FastAndReference(m, x, tokens, 2).Reference;
        using var pool = new WorkerPool(2);
        using var mm = new QuantizedMatMul(tokens);
        var y = new float[tokens * rows];
        var scratch = new float[tokens * rows];
        fixed (float* pa = a, pb = b, py = y, ps = scratch)
        {
            mm.Run(pool, pa, tokens, q, ps, KernelMode.Fast, perTokenScale: false);
            mm.Run(pool, pa, tokens, k, py, KernelMode.Fast, perTokenScale: false, sameInput: true); // Q's tables
            Assert.Equal(Alone(k, a), y);
            mm.Run(pool, pb, tokens, other, ps, KernelMode.Fast, perTokenScale: false); // new codes, same buffer
            mm.Run(pool, pb, tokens, k, py, KernelMode.Fast, perTokenScale: false, sameInput: true); // must rebuild
            Assert.Equal(Alone(k, b), y);
        }
    }

    /// <summary>
    /// The int16 sums' worst case: groups of 256 whose codes are all the largest (every table lookup 4·127 or 4·−127,
    /// 64 of them per plane), and the zero point's product with Σx at its largest. A wrap would be off by 65536.
    /// </summary>
    [Theory]
    [InlineData(1f)]
    [InlineData(-1f)]
    public void Largest_sums_of_a_256_group_do_not_wrap(float activation)
    {
        if (!Avx512BW.IsSupported) return;
        const string spec = "int4:g256:asym";
        var format = FormatRegistry.Parse(spec);
        int rows = 32, cols = 512;
        var bytes = new byte[format.ByteSize((long)rows * cols)];
        for (int b = 0; b < bytes.Length; b += format.BytesPerBlock)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)0.5f);
            bytes[b + 2] = (byte)(b / format.BytesPerBlock % 2 == 0 ? 0 : 255); // zero point 0, then 255
            bytes.AsSpan(b + 3, format.BytesPerBlock - 3).Fill(0xFF);           // every code 15
        }
        using var m = QuantizedKernelTests.Pack(spec, rows, cols, bytes, MatrixLayout.BitSerial);
        var x = Enumerable.Repeat(activation, cols).ToArray(); // codes ±127
        var (fast, reference) = QuantizedKernelTests.FastAndReference(m, x, 1, 1);
        Assert.Equal(reference, fast);
        // 0.5·(15 − 0)·256 + 0.5·(15 − 255)·256 per unit activation, with the activation's scale 1/127 · 127.
        Assert.Equal(activation * (0.5f * 15 * 256 + 0.5f * (15 - 255) * 256), fast[0], 2);
    }
}
