using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using AnyBit.Formats.Ggml;
using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The grid i-quants' integer forms on every kernel path, through synthetic formats that store exactly those forms, so
/// that the kernels are proven before (and independently of) the types that decode their grids into them: "bytes",
/// <see cref="SignedByteCodes"/> (signed byte codes, a signed sub-scale per 16, a float d per 256), and "table", the
/// same with 4-bit indices into a table of at most 16 codes (<see cref="TableProbeKernel"/>: IQ3_XXS's ±{4, …, 62},
/// IQ4_XS's layout with float d and a table AVX2 multiplies without the sign trick).
/// </summary>
public unsafe class SignedByteCodesTests
{
    /// <summary>The table form's codes: IQ3_XXS's grid values with either sign (every grid type's fit in 16).</summary>
    private static readonly int[] TableCodes = [-62, -52, -44, -36, -28, -20, -12, -4, 4, 12, 20, 28, 36, 44, 52, 62];
    internal static readonly byte[] TableLut = TableCodes.Select(q => (byte)(q + SignedByteCodes.Bias)).ToArray();
    internal static readonly nint TableTables = TableLookup.Create(TableLut, null);

    /// <summary>The table form's traits, as a grid type would declare them.</summary>
    internal struct TableProbeKernel : IKindTraits
    {
        public static int Bits => 4; public static int SuperBlock => 256; public static int Offset => -SignedByteCodes.Bias;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
        public static bool HasLut => true; public static nint Tables => TableTables; public static byte[]? Lut => TableLut;
        public static int MaxTableEntry => 126;
    }

    /// <summary>
    /// A test-only format holding an integer form as it is: float d, 16 signed sub-scales, 256 signed codes (any of
    /// −64..63, or one of <see cref="TableCodes"/>). Its quantizer spreads codes, sub-scales and their signs over the
    /// whole range (negative sub-scales in some sub-blocks, both ends of the codes) so that the kernels meet every case.
    /// </summary>
    internal sealed class Probe(bool table) : TensorFormat
    {
        public const int Bytes = 4 + 16 + 256;
        public override string Name => table ? "table-probe" : "signed-byte-codes-probe";
        public override TensorType? GgmlType => null;
        public override int BlockSize => 256;
        public override int BytesPerBlock => Bytes;
        private PackedKind? _kind;
        internal override PackedKind Kind => _kind ??= table ? PackedKind.Of<TableProbeKernel>(this) : PackedKind.Of<SignedByteCodes>(this);
        public int MinCode => table ? TableCodes[0] : -64;
        public int MaxCode => table ? TableCodes[^1] : 63;

        /// <summary>The nearest code to <paramref name="v"/> the form holds.</summary>
        private int Nearest(float v)
        {
            if (!table) return Math.Clamp((int)MathF.Round(v), -64, 63);
            return TableCodes.MinBy(q => Math.Abs(q - v));
        }

        public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
        {
            for (int b = 0; b < x.Length / 256; b++)
            {
                var xb = x.Slice(256 * b, 256);
                var o = y.Slice(Bytes * b, Bytes);
                float amax = 0;
                foreach (float v in xb) amax = Math.Max(amax, Math.Abs(v));
                float d = amax / (63f * 31f);
                BitConverter.TryWriteBytes(o, d);
                for (int h = 0; h < 16; h++)
                {
                    float m = 0;
                    for (int i = 0; i < 16; i++) m = Math.Max(m, Math.Abs(xb[16 * h + i]));
                    int sc = d == 0 ? 1 : Math.Clamp((int)MathF.Ceiling(m / (63f * d)), 1, 31);
                    // Some sub-blocks with a negative sub-scale (and negated codes), as signed sub-scales allow.
                    bool flip = h % 5 == 3;
                    o[4 + h] = (byte)(sbyte)(flip ? -sc : sc);
                    for (int i = 0; i < 16; i++)
                    {
                        int q = Nearest(d == 0 ? 0 : xb[16 * h + i] / (d * sc));
                        // Both ends of the range: −64 where a byte code would be −63 (a table's codes are symmetric).
                        if (flip && q != -64) q = -q;
                        if (q == -63) q = -64;
                        o[20 + 16 * h + i] = (byte)(sbyte)q;
                    }
                }
            }
        }

        public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
        {
            if (table) BlockDequantizer.Dequantize<TableProbeKernel>(this, src, dst);
            else BlockDequantizer.Dequantize<SignedByteCodes>(this, src, dst);
        }

        internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
        {
            o.D = BitConverter.ToSingle(bytes);
            for (int h = 0; h < 16; h++) o.Scales16[h] = (sbyte)bytes[4 + h];
            for (int i = 0; i < 256; i++)
            {
                int q = (sbyte)bytes[20 + i];
                o.Codes[i] = (byte)(table ? Array.IndexOf(TableCodes, q) : q + SignedByteCodes.Bias);
            }
        }
    }

    public static IEnumerable<object[]> Forms() => [["bytes"], ["table"]];

    private static Probe FormatOf(string form) => form == "table" ? new Probe(true) : new Probe(false);

    private static byte[] RandomBytes(Probe format, int rows, int cols, int seed, out float[] w)
    {
        var rng = new Random(seed);
        w = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            float scale = (float)Math.Exp(rng.NextDouble() * 3 - 1.5);
            for (int c = 0; c < cols; c++) w[r * cols + c] = (float)((rng.NextDouble() * 2 - 1 + (rng.Next(50) == 0 ? 4 : 0)) * scale);
        }
        var bytes = new byte[format.ByteSize((long)rows * cols)];
        format.Quantize(w, cols, bytes);
        return bytes;
    }

    /// <summary>Every path this CPU runs, for both forms: the x86 kernels with each dot product that can take these
    /// codes (AVX2's plain one is what <see cref="KernelPaths.ForAvx2"/> picks; its sign trick is checked too), and the
    /// 128-bit one.</summary>
    public static IEnumerable<object[]> Paths()
    {
        foreach (var form in new[] { "bytes", "table" })
        {
            if (AvxVnni.IsSupported) yield return ["avx-vnni", form];
            if (Avx2.IsSupported) { yield return ["avx2", form]; yield return ["avx2-signed", form]; }
            if (Dp.IsSupported) yield return ["sdot", form];
            yield return ["vector128", form];
        }
    }

    private static GroupKernel KernelFor(string path, PackedKind kind) => path switch
    {
        "avx-vnni" => KernelPaths.For<VnniDot>(kind),
        "avx2" => KernelPaths.ForAvx2(kind),
        "avx2-signed" => KernelPaths.For<Avx2SignedDot>(kind),
        "sdot" => KernelPaths.ForPortable<SdotDot>(kind),
        "vector128" => KernelPaths.ForPortable<Vector128Dot>(kind),
        _ => throw new ArgumentException(path),
    };

    [Fact]
    public void The_forms_take_avx2s_plain_product_and_pair_their_groups_where_16_row_tiles_run()
    {
        // Paired only where the 16-row tiles exist (GroupLayout.Paired): AVX-512VL.
        bool paired = System.Runtime.Intrinsics.X86.Avx512F.VL.IsSupported;
        var bytes = new Probe(false).Kind;
        Assert.Equal(127, KernelPaths.MaxCode(bytes));
        Assert.Equal(paired, bytes.PairedGroups);
        // 8 rows × 256 byte codes, 8 float d, 8 × 16 sub-scale bytes.
        Assert.Equal(2048 + 32 + 128, bytes.SuperBlockBytes);
        var table = new Probe(true).Kind;
        Assert.Equal(126, KernelPaths.MaxCode(table));
        Assert.Equal(paired, table.PairedGroups);
        Assert.Equal(1024 + 32 + 128, table.SuperBlockBytes);
        if (Avx2.IsSupported && !AvxVnni.IsSupported)
        {
            Assert.Equal(typeof(PackedKernel<SignedByteCodes, Avx2Dot>), KernelPaths.ForAvx2(bytes).Method.DeclaringType);
            Assert.Equal(typeof(PackedKernel<TableProbeKernel, Avx2Dot>), KernelPaths.ForAvx2(table).Method.DeclaringType);
        }
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Decoded_blocks_reproduce_the_dequantizer_exactly(string form)
    {
        var format = FormatOf(form);
        var bytes = RandomBytes(format, 3, 512, 11, out _);
        var expected = new float[3 * 512];
        format.Dequantize(bytes, expected);
        var kind = format.Kind;
        var codes = new byte[256];
        var scales = new int[16];
        var mins = new int[16];
        var seen = new HashSet<int>();
        for (int b = 0; b < 6; b++)
        {
            var block = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
            BlockDecoder.Decode(kind, bytes.AsSpan(b * Probe.Bytes, Probe.Bytes), ref block);
            for (int i = 0; i < 256; i++)
            {
                Assert.InRange(codes[i], 0, form == "table" ? 15 : 127);
                int q = kind.Unsigned(codes[i]) + kind.Offset;
                seen.Add(q);
                Assert.Equal(expected[256 * b + i], block.D * scales[i / 16] * q);
            }
        }
        // The quantizer reaches both ends of the code range.
        Assert.Contains(format.MinCode, seen);
        Assert.Contains(format.MaxCode, seen);
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Reference_kernel_equals_float_math_on_the_dequantized_operands(string form)
    {
        int rows = 5, cols = 768, tokens = 2;
        var format = FormatOf(form);
        var bytes = RandomBytes(format, rows, cols, 3, out _);
        var w = new float[rows * cols];
        format.Dequantize(bytes, w);
        using var m = PackedMatrix.Create(format, default, rows, cols, bytes, keepSource: true);
        using var a = QuantizedKernelTests.RandomActivations(tokens, cols, m.ActivationBlock, 4, out _);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double expected = 0, magnitude = 0;
                for (int k = 0; k < cols; k++)
                {
                    double xv = a.Codes(t)[k] * (double)a.Scales(t)[k / 256];
                    expected += w[r * cols + k] * xv;
                    magnitude += Math.Abs(w[r * cols + k] * xv);
                }
                float actual = ReferenceKernel.Row(m, r, a, t);
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * magnitude + 1e-6, $"row {r} token {t}: {actual} vs {expected}");
            }
    }

    /// <summary>As QuantizedKernelTests' test of every kind: 1 to 4 tokens, one group and two adjacent ones (the second
    /// padded), against the scalar reference bit for bit.</summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void Simd_path_matches_the_scalar_reference_bit_for_bit(string path, string form)
    {
        int rows = 29, cols = 1024, tokens = 5;
        var format = FormatOf(form);
        var bytes = RandomBytes(format, rows, cols, 5, out _);
        using var m = PackedMatrix.Create(format, default, rows, cols, bytes, keepSource: true, MatrixLayout.Interleaved);
        var kernel = KernelFor(path, m.Kind);
        using var a = QuantizedKernelTests.RandomActivations(tokens, cols, m.ActivationBlock, 6, out _);
        foreach (int span in new[] { 1, 2 })
        {
            int width = 8 * span;
            var y = new float[4 * width];
            foreach (int step in new[] { 1, 2, 3, 4 })
                for (int t = 0; t + step <= tokens; t++)
                    for (int g = 0; g + span <= m.Groups; g += span)
                    {
                        int n = Math.Min(width, rows - g * 8);
                        Array.Fill(y, float.NaN);
                        fixed (float* py = y) kernel(m.Group(g), m.SuperBlocks, a.Codes(t), a.Scales(t), a.Sums16(t), a.LaneSums(t), py, n, step, width);
                        for (int u = 0; u < step; u++)
                        {
                            for (int r = 0; r < n; r++) Assert.Equal(ReferenceKernel.Row(m, g * 8 + r, a, t + u), y[width * u + r]);
                            for (int r = n; r < width; r++) Assert.True(float.IsNaN(y[width * u + r]), "a padded row was written");
                        }
                        for (int u = step; u < 4; u++) Assert.True(float.IsNaN(y[width * u]), $"{step} tokens wrote token {u}'s outputs");
                    }
        }
    }

    /// <summary>
    /// The bounds: the smallest and largest codes (−64 and 63; the table's ±62), sub-scales −128 and 127, activations
    /// ±127 — the largest int16 pair products and the largest sums per lane — on every path, one to four tokens, 8 and
    /// 16 rows, against the reference and against the exact integer sum.
    /// </summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void Extreme_codes_and_sub_scales_against_extreme_activations_are_exact(string path, string form)
    {
        var format = FormatOf(form);
        int lo = format.MinCode, hi = format.MaxCode;
        int rows = 16, cols = 512, tokens = 4, blocks = cols / 256;
        var bytes = new byte[rows * blocks * Probe.Bytes];
        var q = new int[rows * cols];
        var sc = new int[rows * cols / 16];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
            {
                var o = bytes.AsSpan((r * blocks + b) * Probe.Bytes, Probe.Bytes);
                BitConverter.TryWriteBytes(o, 1f / 1024);
                for (int h = 0; h < 16; h++)
                {
                    int s = ((r + h) % 4) switch { 0 => -128, 1 => 127, 2 => -1, _ => 31 };
                    o[4 + h] = (byte)(sbyte)s;
                    sc[(r * cols + 256 * b) / 16 + h] = s;
                }
                for (int i = 0; i < 256; i++)
                {
                    int c = (r % 4) switch { 0 => lo, 1 => hi, 2 => (i & 1) == 0 ? lo : hi, _ => (i & 1) == 0 ? hi : lo };
                    o[20 + i] = (byte)(sbyte)c;
                    q[r * cols + 256 * b + i] = c;
                }
            }
        var x = new float[tokens * cols];
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < cols; c++)
                x[t * cols + c] = t switch { 0 => -1, 1 => 1, 2 => (c & 1) == 0 ? 1 : -1, _ => (c & 1) == 0 ? -1 : 1 };
        using var m = PackedMatrix.Create(format, default, rows, cols, bytes, keepSource: true, MatrixLayout.Interleaved);
        var kernel = KernelFor(path, m.Kind);
        using var a = new QuantizedActivations(tokens, cols, m.ActivationBlock);
        fixed (float* px = x) a.Quantize(px, tokens, cols);
        foreach (int width in new[] { 8, 16 })
            foreach (int step in new[] { 1, 2, 4 })
                for (int t = 0; t + step <= tokens; t += step)
                    for (int g = 0; g < m.Groups; g += width / 8)
                    {
                        var y = new float[4 * width];
                        fixed (float* py = y) kernel(m.Group(g), m.SuperBlocks, a.Codes(t), a.Scales(t), a.Sums16(t), a.LaneSums(t), py, width, step, width);
                        for (int u = 0; u < step; u++)
                            for (int r = 0; r < width; r++)
                            {
                                int row = g * 8 + r;
                                double exact = 0;
                                for (int b = 0; b < blocks; b++)
                                {
                                    long isum = 0;
                                    for (int c = 256 * b; c < 256 * b + 256; c++) isum += (long)sc[(row * cols + c) / 16] * q[row * cols + c] * a.Codes(t + u)[c];
                                    exact += isum / 1024.0 * a.Scales(t + u)[b];
                                }
                                Assert.Equal(ReferenceKernel.Row(m, row, a, t + u), y[width * u + r]);
                                Assert.True(Math.Abs(y[width * u + r] - exact) <= 1e-5 * Math.Max(1, Math.Abs(exact)), $"{path} row {row} token {t + u}: {y[width * u + r]} vs {exact}");
                            }
                    }
    }

    /// <summary>The whole product on the pool, decode and prefill token counts, equals the reference.</summary>
    [Theory]
    [InlineData("bytes", 1, 2)]
    [InlineData("bytes", 7, 2)]
    [InlineData("table", 1, 2)]
    [InlineData("table", 7, 2)]
    public void Matmul_on_the_pool_equals_the_reference(string form, int tokens, int workers)
    {
        int rows = 40, cols = 768;
        var format = FormatOf(form);
        var bytes = RandomBytes(format, rows, cols, 9, out _);
        using var m = PackedMatrix.Create(format, default, rows, cols, bytes, keepSource: true);
        var x = new float[tokens * cols];
        var rng = new Random(2);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var (fast, reference) = QuantizedKernelTests.FastAndReference(m, x, tokens, workers);
        Assert.Equal(reference, fast);
    }
}
