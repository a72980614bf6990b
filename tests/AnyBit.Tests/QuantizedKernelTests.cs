using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The integer kernels: the block decoder against the ggml dequantizers, the scalar reference against float math on
/// dequantized weights and activations, and every SIMD path against the scalar reference, bit for bit.
/// </summary>
public unsafe class QuantizedKernelTests
{
    /// <summary>Every kind the integer kernels run: every ggml type of the format table that has a kernel, and AnyBit
    /// int formats (storage widths 2, 4, 8; symmetric, asymmetric and 1-bit signs; every compiled group size) and
    /// table formats.</summary>
    private static readonly string[] Specs =
    [
        .. Formats.FormatTable.Ggml.Where(f => f.Kind is not null).Select(f => f.TypeName),
        .. FormatRegistry.Families.SelectMany(f => f.Examples).Where(spec => FormatRegistry.Parse(spec).Kind is not null),
    ];

    public static IEnumerable<object[]> Kinds() => Specs.Select(s => new object[] { s });

    private static TensorFormat FormatOf(string spec) => FormatRegistry.Parse(spec.ToLowerInvariant());

    /// <summary>The packed matrix of <paramref name="spec"/>'s bytes, as the loader would build it.</summary>
    internal static PackedMatrix Pack(string spec, int rows, int cols, byte[] bytes, MatrixLayout layout = MatrixLayout.Auto)
    {
        return PackedMatrix.Create(FormatOf(spec), default, rows, cols, bytes, keepSource: true, layout);
    }

    private static PackedKind KindOf(string spec)
    {
        return PackedKind.For(FormatOf(spec), default)!;
    }

    internal static (float[] Weights, byte[] Bytes) RandomMatrix(string spec, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        bool ternary = spec.StartsWith("TQ", StringComparison.Ordinal);
        // Rows of different magnitudes and a few outliers, so scales, mins and sub-scales all vary.
        var w = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            float scale = (float)Math.Exp(rng.NextDouble() * 3 - 1.5);
            for (int c = 0; c < cols; c++)
            {
                double v = ternary ? rng.Next(3) - 1 : rng.NextDouble() * 2 - 1 + (rng.Next(50) == 0 ? 4 : 0);
                w[r * cols + c] = (float)(v * scale);
            }
        }
        var format = FormatOf(spec);
        var bytes = new byte[format.ByteSize((long)rows * cols)];
        // Types llama.cpp quantizes only with an importance matrix get a flat one.
        format.Quantize(w, cols, bytes, format.RequiresImportance ? Enumerable.Repeat(1f, cols).ToArray() : default);
        return (w, bytes);
    }

    private static float[] Dequantize(string spec, byte[] bytes, int count)
    {
        var values = new float[count];
        FormatOf(spec).Dequantize(bytes, values);
        return values;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Decoded_blocks_reproduce_the_formats_dequantizer_exactly(string spec)
    {
        var kind = KindOf(spec);
        int rows = 3, cols = 512;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 11);
        var expected = Dequantize(spec, bytes, rows * cols);
        int sb = kind.SuperBlock, blockBytes = kind.BlockBytes;
        var codes = new byte[sb];
        var scales = new int[sb / 16];
        var mins = new int[sb / 16];
        for (int b = 0; b < rows * cols / sb; b++)
        {
            var block = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
            BlockDecoder.Decode(kind, bytes.AsSpan(b * blockBytes, blockBytes), ref block);
            for (int i = 0; i < sb; i++)
            {
                Assert.InRange(codes[i], 0, kind.Lut is { } table ? table.Length - 1 : KernelPaths.MaxCode(kind));
                // The dequantizers compute (d·sc)·q − dmin·m in float32; every term is exact, so they must agree.
                int code = kind.Unsigned(codes[i]);
                float value = block.D * scales[i / 16] * (code + kind.Offset - block.Zero) - block.DMin * mins[i / 16];
                if (kind.Book is { Exact: false } book)
                {
                    // NF4's irrational levels are held on a grid: off by at most the book's level error times the block's scale.
                    float blockScale = block.D * book.Scale;
                    Assert.True(Math.Abs(expected[b * sb + i] - value) <= (book.MaxLevelError + 1e-6) * blockScale,
                        $"{spec} block {b} value {i}: {value} vs {expected[b * sb + i]}");
                }
                else Assert.Equal(expected[b * sb + i], value);
            }
        }
    }

    /// <summary>
    /// X·Wᵀ for <paramref name="tokens"/> rows of <paramref name="x"/> on a pool of <paramref name="workers"/>: with the
    /// fast kernels on <paramref name="fast"/>, and with the scalar reference on <paramref name="reference"/> (the
    /// same matrix unless given).
    /// </summary>
    internal static (float[] Fast, float[] Reference) FastAndReference(PackedMatrix fast, float[] x, int tokens, int workers, PackedMatrix? reference = null)
    {
        var yFast = new float[tokens * fast.Rows];
        var yReference = new float[tokens * fast.Rows];
        using var pool = new WorkerPool(workers);
        using var mm = new QuantizedMatMul(tokens);
        fixed (float* px = x, pf = yFast, pr = yReference)
        {
            mm.Run(pool, px, tokens, fast, pf, KernelMode.Fast, perTokenScale: false);
            mm.Run(pool, px, tokens, reference ?? fast, pr, KernelMode.Reference, perTokenScale: false);
        }
        return (yFast, yReference);
    }

    internal static QuantizedActivations RandomActivations(int tokens, int cols, int blockSize, int seed, out float[] x)
    {
        var rng = new Random(seed);
        x = Enumerable.Range(0, tokens * cols).Select(i => (float)((rng.NextDouble() * 2 - 1) * (1 + (i % 97 == 0 ? 20 : 0)))).ToArray();
        var a = new QuantizedActivations(tokens, cols, blockSize);
        fixed (float* p = x) a.Quantize(p, tokens, cols);
        return a;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Reference_kernel_equals_float_math_on_the_dequantized_operands(string spec)
    {
        int rows = 5, cols = 768, tokens = 2;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 3);
        var w = Dequantize(spec, bytes, rows * cols);
        using var m = Pack(spec, rows, cols, bytes);
        using var a = RandomActivations(tokens, cols, m.ActivationBlock, 4, out _);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double expected = 0, magnitude = 0;
                for (int k = 0; k < cols; k++)
                {
                    double xv = a.Codes(t)[k] * (double)a.Scales(t)[k / m.ActivationBlock];
                    expected += w[r * cols + k] * xv;
                    magnitude += Math.Abs(w[r * cols + k] * xv);
                    // A book held on a grid (NF4) moves each weight by at most its level error times the block's absmax.
                    if (m.Kind.Book is { Exact: false } book)
                    {
                        int b0 = k / m.ActivationBlock * m.ActivationBlock;
                        double absmax = Enumerable.Range(b0, m.ActivationBlock).Max(i => Math.Abs(w[r * cols + i]));
                        magnitude += Math.Abs(xv) * absmax * book.MaxLevelError / 1e-5;
                    }
                }
                float actual = ReferenceKernel.Row(m, r, a, t);
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * magnitude + 1e-6, $"{spec} row {r} token {t}: {actual} vs {expected}");
            }
    }

    /// <summary>The SIMD paths this CPU can run (a CPU without them runs the reference only, tested above).</summary>
    public static IEnumerable<object[]> PathsAndKinds()
    {
        foreach (var kind in Specs)
        {
            if (AvxVnni.IsSupported) yield return ["avx-vnni", kind];
            // Codes up to 255 (Q8_0, IQ4_NL, int8) take the AVX2 path's sign trick (Avx2SignedDot).
            if (Avx2.IsSupported) yield return ["avx2", kind];
            // The 128-bit kernel of CPUs without AVX2: ARM64's sdot where this is one, and its portable dot product
            // everywhere (all of the kernel but the sdot instruction runs here).
            if (Dp.IsSupported) yield return ["sdot", kind];
            yield return ["vector128", kind];
        }
    }

    /// <summary>The kernel of <paramref name="kind"/> on SIMD path <paramref name="path"/>.</summary>
    private static GroupKernel KernelFor(string path, PackedKind kind, bool rawExponents = false) => path switch
    {
        "avx-vnni" => KernelPaths.For<VnniDot>(kind, rawExponents),
        "avx2" => KernelPaths.ForAvx2(kind, rawExponents),
        "sdot" => KernelPaths.ForPortable<SdotDot>(kind, rawExponents),
        "vector128" => KernelPaths.ForPortable<Vector128Dot>(kind, rawExponents),
        _ => throw new ArgumentException(path),
    };

    [Theory]
    [MemberData(nameof(PathsAndKinds))]
    public void Simd_path_matches_the_scalar_reference_bit_for_bit(string path, string spec)
    {
        var kind = KindOf(spec);
        // 29 rows: three full groups of 8 and a padded group of 5 (so the second pair of groups is 8 + the padded 5).
        int rows = 29, cols = 1024, tokens = 9;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 5);
        using var m = Pack(spec, rows, cols, bytes, MatrixLayout.Interleaved); // the bit-serial layout has its own tests
        Assert.False(m.RawExponents); // real weights' MX scales: the biased-exponent kernels
        var kernel = KernelFor(path, kind, m.RawExponents);
        using var a = RandomActivations(tokens, cols, m.ActivationBlock, 6, out _);
        // One token at a time, then 2 to 8 at a time (the prefill tiles: tokens t..t+step−1; four and eight are tiles
        // of their own where the kind has them, the other counts fours, pairs and singles), on one group (8 rows,
        // outputs 8 floats apart) and on two adjacent groups as QuantizedMatMul hands them out (16 rows, then 13, from
        // a pair's first group: paired kinds store the two groups' blocks alternately; outputs 16 floats apart).
        int most = QuantizedMatMul.MaxTokensPerCall;
        foreach (int span in new[] { 1, 2 })
        {
            int width = 8 * span;
            var y = new float[most * width];
            foreach (int step in Enumerable.Range(1, most))
                for (int t = 0; t + step <= tokens; t += step <= 2 ? 1 : 2)
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
                        for (int u = step; u < most; u++) Assert.True(float.IsNaN(y[width * u]), $"{step} tokens wrote token {u}'s outputs");
                    }
        }
    }

    public static IEnumerable<object[]> SimdPaths()
    {
        if (AvxVnni.IsSupported) yield return ["avx-vnni"];
        if (Avx2.IsSupported) yield return ["avx2"];
        if (Dp.IsSupported) yield return ["sdot"];
        yield return ["vector128"];
    }

    /// <summary>
    /// Q8_0's extreme codes (−128 and 127) against activations of ±127, where a pair of products reaches ±32512:
    /// within int16, but only if the AVX2 sign trick takes |w| (not |x|) as the unsigned operand — −128's sign flip
    /// would wrap otherwise. Every SIMD path, one, four and eight tokens, 8- and 16-row tiles, against the reference
    /// and against the integer sum computed here.
    /// </summary>
    [Theory]
    [MemberData(nameof(SimdPaths))]
    public void Extreme_q8_0_codes_against_extreme_activations_are_exact(string path)
    {
        int rows = 16, cols = 256, tokens = QuantizedMatMul.MaxTokensPerCall, blocks = cols / 32;
        var q = new sbyte[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                q[r * cols + c] = (r % 4) switch { 0 => -128, 1 => 127, 2 => (c & 1) == 0 ? (sbyte)-128 : (sbyte)127, _ => (c & 1) == 0 ? (sbyte)127 : (sbyte)-128 };
        var bytes = new byte[rows * blocks * 34];
        for (int b = 0; b < rows * blocks; b++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 34, 2), (ushort)0x3C00); // d = 1
            for (int i = 0; i < 32; i++) bytes[b * 34 + 2 + i] = (byte)q[b * 32 + i];
        }
        // Tokens all −1, all +1, and alternating both ways (twice over): every code becomes ±127.
        var x = new float[tokens * cols];
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < cols; c++)
                x[t * cols + c] = (t % 4) switch { 0 => -1, 1 => 1, 2 => (c & 1) == 0 ? 1 : -1, _ => (c & 1) == 0 ? -1 : 1 };
        using var m = Pack("Q8_0", rows, cols, bytes, MatrixLayout.Interleaved);
        var kernel = KernelFor(path, PackedKind.For(TensorType.Q8_0)!);
        using var a = new QuantizedActivations(tokens, cols, m.ActivationBlock);
        fixed (float* px = x) a.Quantize(px, tokens, cols);
        foreach (int width in new[] { 8, 16 })
            foreach (int step in new[] { 1, 4, 8 })
                for (int t = 0; t + step <= tokens; t += step)
                    for (int g = 0; g < m.Groups; g += width / 8)
                    {
                        var y = new float[tokens * width];
                        fixed (float* py = y) kernel(m.Group(g), m.SuperBlocks, a.Codes(t), a.Scales(t), a.Sums16(t), a.LaneSums(t), py, width, step, width);
                        for (int u = 0; u < step; u++)
                            for (int r = 0; r < width; r++)
                            {
                                int row = g * 8 + r;
                                long exact = 0;
                                for (int c = 0; c < cols; c++) exact += q[row * cols + c] * (long)a.Codes(t + u)[c];
                                Assert.Equal(ReferenceKernel.Row(m, row, a, t + u), y[width * u + r]);
                                double expected = exact / 127.0;
                                Assert.True(Math.Abs(y[width * u + r] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"row {row} token {t + u}: {y[width * u + r]} vs {expected}");
                            }
                    }
    }

    /// <summary>
    /// 4-bit codes of 15 (all but one per block) against activations of ±127: the largest int16 pair sums the AVX2
    /// path accumulates before widening (8 vectors × 2·15·127 = 30480, PackedKernel.PairSums). Every SIMD path,
    /// one and four tokens, 16-row tiles (the decode and prefill tiles of Q4_0 and Q4_K) and 8-row ones.
    /// </summary>
    [Theory]
    [InlineData("Q4_0")]
    [InlineData("Q4_K")]
    [InlineData("int4:g32:asym")]
    public void Largest_4_bit_codes_against_extreme_activations_are_exact(string spec)
    {
        int rows = 16, cols = 512, tokens = 4;
        // Q4_0's d is the signed extreme over −8: one +1 per block makes the −7/8s code 15. Q4_K and int4 put the
        // min at the one −1 and every +1 at code 15.
        bool q4_0 = spec == "Q4_0";
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = i % 32 == 5 ? (q4_0 ? 1f : -1f) : (q4_0 ? -0.875f : 1f);
        var format = FormatOf(spec);
        var bytes = new byte[format.ByteSize(w.Length)];
        format.Quantize(w, cols, bytes);
        using var m = Pack(spec, rows, cols, bytes, MatrixLayout.Interleaved);
        var kind = KindOf(spec);
        var codes = new byte[kind.SuperBlock];
        var block = new DecodedBlock { Codes = codes, Scales16 = new int[kind.SuperBlock / 16], Mins16 = new int[kind.SuperBlock / 16] };
        BlockDecoder.Decode(kind, bytes.AsSpan(0, kind.BlockBytes), ref block);
        Assert.True(codes.Count(c => c == 15) >= kind.SuperBlock * 31 / 32, $"codes: {string.Join(",", codes.Take(32))}");
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (i / cols) switch { 0 => 1, 1 => -1, 2 => 1, _ => -1 };
        using var a = new QuantizedActivations(tokens, cols, m.ActivationBlock);
        fixed (float* px = x) a.Quantize(px, tokens, cols);
        foreach (var (path, kernel) in SimdPaths().Select(p => (string)p[0]).Select(p => (p, KernelFor(p, kind))))
            foreach (int width in new[] { 8, 16 })
                foreach (int step in new[] { 1, 4 })
                {
                    var y = new float[4 * width];
                    fixed (float* py = y) kernel(m.Group(0), m.SuperBlocks, a.Codes(0), a.Scales(0), a.Sums16(0), a.LaneSums(0), py, width, step, width);
                    for (int u = 0; u < step; u++)
                        for (int r = 0; r < width; r++)
                            Assert.True(ReferenceKernel.Row(m, r, a, u) == y[width * u + r], $"{path}, {width} rows, {step} tokens: row {r} token {u}");
                }
    }

    /// <summary>
    /// Q, K and V as one run of the pool give the bits of three runs: matrices of one kind, of kinds that share the
    /// codes (Q4_K and Q6_K: 256-value blocks; Q8_0 and Q4_0: 32), and ones that cannot be joined (Q4_K with Q4_0's
    /// 32-value codes, a lookup layout), which fall back to a run each — decode and prefill token counts.
    /// </summary>
    [Theory]
    [InlineData("Q4_0", "Q4_0", "Q4_0", 1, 2)]
    [InlineData("Q4_K", "Q6_K", "Q4_K", 1, 2)]
    [InlineData("Q4_K", "Q6_K", "Q4_K", 7, 2)]
    [InlineData("Q8_0", "Q4_0", "", 5, 1)]
    [InlineData("Q4_K", "Q4_0", "Q6_K", 1, 2)]
    [InlineData("TQ2_0", "Q4_K", "TQ2_0", 1, 2)]
    public void Fused_products_of_one_input_equal_separate_ones(string a, string b, string c, int tokens, int workers) =>
        FusedEqualsSeparate(new[] { a, b, c }.Where(t => t.Length > 0).ToArray(), [200, 56, 72], tokens, workers);

    /// <summary>A decode step's four chosen experts' gates and ups (MXFP4, as gpt-oss's), eight products in one run.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Fused_products_of_a_tokens_experts_equal_separate_ones(int workers) =>
        FusedEqualsSeparate(Enumerable.Repeat("MXFP4", 8).ToArray(), [64, 64, 200, 200, 72, 72, 56, 56], 1, workers);

    private static void FusedEqualsSeparate(string[] specs, int[] rows, int tokens, int workers)
    {
        int cols = 512;
        var ms = specs.Select((t, i) => Pack(t, rows[i], cols, RandomMatrix(t, rows[i], cols, 60 + i).Bytes)).ToArray();
        try
        {
            var rng = new Random(61);
            var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var separate = ms.Select(m => new float[tokens * m.Rows]).ToArray();
            var fused = ms.Select(m => new float[tokens * m.Rows]).ToArray();
            using var pool = new WorkerPool(workers);
            using var mm = new QuantizedMatMul(tokens);
            var handles = fused.Select(f => System.Runtime.InteropServices.GCHandle.Alloc(f, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            try
            {
                fixed (float* px = x)
                {
                    for (int i = 0; i < ms.Length; i++)
                        fixed (float* py = separate[i]) mm.Run(pool, px, tokens, ms[i], py, KernelMode.Fast, perTokenScale: false);
                    var ys = handles.Select(h => h.AddrOfPinnedObject()).ToArray();
                    mm.RunFused(pool, px, tokens, ms, ys, KernelMode.Fast, perTokenScale: false);
                }
            }
            finally { foreach (var h in handles) h.Free(); }
            for (int i = 0; i < ms.Length; i++) Assert.Equal(separate[i], fused[i]);
            // Joined exactly where every matrix is interleaved and all share one activation block (Q4_0 and Q8_0: 32).
            Assert.Equal(ms.All(m => m.Lookup is null) && ms.Select(m => m.ActivationBlock).Distinct().Count() == 1, QuantizedMatMul.CanFuse(ms, KernelMode.Fast));
            Assert.False(QuantizedMatMul.CanFuse(ms, KernelMode.Reference));
        }
        finally { foreach (var m in ms) m.Dispose(); }
    }

    [Theory]
    [InlineData("Q4_0", 1, 1)]
    [InlineData("Q4_0", 9, 2)]
    [InlineData("Q8_0", 4, 1)]
    [InlineData("Q5_0", 6, 3)]
    [InlineData("Q4_K", 4, 2)]
    [InlineData("Q6_K", 3, 3)]
    [InlineData("TQ1_0", 2, 4)]
    [InlineData("int3:g128:asym", 5, 2)]
    [InlineData("nf4:g64", 3, 2)]
    [InlineData("mxfp6_e3m2", 2, 3)]
    public void Matmul_on_the_pool_equals_the_reference_for_every_token(string spec, int tokens, int workers)
    {
        int rows = 300, cols = 512;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 8);
        using var m = Pack(spec, rows, cols, bytes);
        var rng = new Random(9);
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var (fast, reference) = FastAndReference(m, x, tokens, workers);
        Assert.Equal(reference, fast);
    }

    [Theory]
    [InlineData("mxfp6_e3m2", true)]
    [InlineData("mxfp4_e2m1", true)]
    [InlineData("mxint8:g64", true)]
    [InlineData("mxfp6_e3m2", false)]
    [InlineData("mxfp4_e2m1", false)]
    [InlineData("mxint8:g64", false)]
    public void Mx_scale_bytes_of_every_range_decode_and_multiply_as_the_format_says(string spec, bool everyRange)
    {
        // E8M0 bytes kept in memory become floats in the kernel: normal, subnormal (an all-zero block stores e = 0,
        // and 2^(e − 127) over the book's scale is subnormal below e = 1 + shift), huge and NaN (255) — kept raw and
        // decoded range by range. A matrix whose bytes are all in shift + 1 .. 254 (its extremes here) holds them
        // biased by the shift instead, and its kernel only moves them into a float's exponent field.
        var kind = KindOf(spec);
        Assert.True(kind.E8M0);
        int rows = 16, cols = 512, bb = kind.BlockBytes, sb = kind.SuperBlock, shift = kind.E8M0Shift;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 12);
        byte[] exponents = everyRange ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 127, 200, 254, 255]
            : [(byte)(shift + 1), (byte)(shift + 2), 100, 127, 200, 253, 254];
        // One exponent per row, so that a row of tiny scales is not drowned by its neighbours' large ones.
        for (int b = 0; b < rows * cols / sb; b++) bytes[b * bb] = exponents[b / (cols / sb) % exponents.Length];
        var expected = Dequantize(spec, bytes, rows * cols);
        var codes = new byte[sb];
        var scales = new int[sb / 16];
        var mins = new int[sb / 16];
        for (int b = 0; b < rows * cols / sb; b++)
        {
            var block = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
            BlockDecoder.Decode(kind, bytes.AsSpan(b * bb, bb), ref block);
            for (int i = 0; i < sb; i++)
            {
                int code = kind.Unsigned(codes[i]);
                Assert.Equal(expected[b * sb + i], block.D * (code + kind.Offset));
            }
        }
        using var m = Pack(spec, rows, cols, bytes);
        Assert.Equal(everyRange, m.RawExponents);
        using var a = RandomActivations(2, cols, m.ActivationBlock, 13, out _);
        var y = new float[8];
        foreach (var kernel in PathsFor(kind, m.RawExponents))
            for (int t = 0; t < 2; t++)
                for (int g = 0; g < m.Groups; g++)
                {
                    fixed (float* py = y) kernel(m.Group(g), m.SuperBlocks, a.Codes(t), a.Scales(t), a.Sums16(t), a.LaneSums(t), py, 8, 1, 0);
                    for (int r = 0; r < 8; r++) Assert.Equal(ReferenceKernel.Row(m, g * 8 + r, a, t), y[r]);
                }
        // Both groups at once (the 16-row decode of paired kinds).
        var y16 = new float[16];
        foreach (var kernel in PathsFor(kind, m.RawExponents))
        {
            fixed (float* py = y16) kernel(m.Group(0), m.SuperBlocks, a.Codes(0), a.Scales(0), a.Sums16(0), a.LaneSums(0), py, 16, 1, 0);
            for (int r = 0; r < 16; r++) Assert.Equal(ReferenceKernel.Row(m, r, a, 0), y16[r]);
        }
    }

    private static IEnumerable<GroupKernel> PathsFor(PackedKind kind, bool rawExponents)
    {
        if (AvxVnni.IsSupported) yield return KernelPaths.For<VnniDot>(kind, rawExponents);
        if (Avx2.IsSupported) yield return KernelPaths.ForAvx2(kind, rawExponents);
        if (Dp.IsSupported) yield return KernelPaths.ForPortable<SdotDot>(kind, rawExponents);
        yield return KernelPaths.ForPortable<Vector128Dot>(kind, rawExponents);
    }

    [Fact]
    public void Codebook_kernel_constants_match_their_books()
    {
        // The kernels take index width and wideness as compile-time constants; the levels come from the books.
        void Check<TB>() where TB : struct, IBook
        {
            Assert.Equal(TB.Book.IndexBits, TB.IndexBits);
            Assert.Equal(TB.Book.Hi is not null, TB.Wide);
            Assert.True(TB.Book.Lo.Max() <= TB.MaxEntry, $"{TB.Book.Name}: entries up to {TB.Book.Lo.Max()}");
        }
        Check<Nf4Book>(); Check<BnbFp4Book>(); Check<E2M1Book>(); Check<E2M3Book>(); Check<E3M2Book>();
        Assert.True(PackedKind.For(TensorType.MXFP4)!.Lut!.Max() <= Formats.Ggml.MXFP4.Kernel.MaxTableEntry);
        // Levels against the specifications' values: E3M2's largest is 28 (448/16), NF4's ±1 land on ±8192.
        Assert.Equal(448, LevelBook.E3M2.Level(31));
        Assert.Equal(-8192, LevelBook.Nf4.Level(0));
        Assert.Equal(8192, LevelBook.Nf4.Level(15));
        Assert.Equal(60, LevelBook.E2M3.Level(31));
        Assert.True(LevelBook.E2M3.Exact && LevelBook.E3M2.Exact && LevelBook.E2M1.Exact);
        // bitsandbytes FP4's float levels are v/12 rounded to float32; the integers are the exact 16·v.
        Assert.InRange(LevelBook.BnbFp4.MaxLevelError, 0, 1e-7);
        Assert.InRange(LevelBook.Nf4.MaxLevelError, 1e-7, 1.0 / 16384);
    }

    [Fact]
    public void Half_scales_widen_exactly_for_every_bit_pattern()
    {
        if (!Avx2.IsSupported) return; // the kernels that keep f16 scales are AVX2/VNNI kernels
        var halves = new ushort[65536];
        for (int i = 0; i < halves.Length; i++) halves[i] = (ushort)i;
        var widened = new float[8];
        fixed (ushort* h = halves)
            for (int i = 0; i < halves.Length; i += 8)
            {
                // The four-instruction widening the kernels use, for every finite pattern (both signs, subnormals, ±0);
                // matrices with non-finite scales never reach it (Matrices_with_non_finite_f16_scales_run_the_reference).
                System.Runtime.Intrinsics.Vector256.CopyTo(HalfWidening.Widen8Finite((byte*)(h + i)), widened);
                for (int k = 0; k < 8; k++)
                {
                    float expected = (float)BitConverter.UInt16BitsToHalf((ushort)(i + k));
                    if (float.IsFinite(expected)) Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(widened[k]));
                }
            }
    }

    /// <summary>
    /// Kinds whose codes reach 255 (Q8_0, IQ4_NL, mxint8, int8): on AVX2 without AVX-VNNI they once had no SIMD path
    /// and threw when packed for the fast kernels; now they take the sign trick (Avx2SignedDot). Through
    /// the whole product (pool, activations, dispatch), fast against the reference from the file's bytes.
    /// </summary>
    [Theory]
    [InlineData("Q8_0")]
    [InlineData("IQ4_NL")]
    [InlineData("mxint8")]
    [InlineData("int8:g64:sym")]
    [InlineData("int8:g32")]
    public void Kinds_with_codes_up_to_255_match_the_reference_through_the_fast_product(string spec)
    {
        int rows = 24, cols = 256, tokens = 2;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 31);
        using var m = PackedMatrix.Create(FormatOf(spec), default, rows, cols, bytes);
        using var withSource = Pack(spec, rows, cols, bytes);
        var rng = new Random(3);
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var (fast, reference) = FastAndReference(m, x, tokens, 2, reference: withSource);
        Assert.Equal(reference, fast);
    }

    [Theory]
    [InlineData("Q4_0", 0x7C00)] // +inf
    [InlineData("Q4_K", 0xFE00)] // a NaN
    public void Matrices_with_non_finite_f16_scales_run_the_reference(string spec, int half)
    {
        int rows = 16, cols = 256, tokens = 4;
        var (_, bytes) = RandomMatrix(spec, rows, cols, 13);
        // d is the first f16 of a Q4_0 block and of a Q4_K super-block (its dmin the second): row 9's first block.
        int blockBytes = KindOf(spec).BlockBytes, blocksPerRow = cols / KindOf(spec).SuperBlock;
        BitConverter.TryWriteBytes(bytes.AsSpan(9 * blocksPerRow * blockBytes, 2), (ushort)half);
        using var m = Pack(spec, rows, cols, bytes);
        Assert.True(m.HasNonFiniteScales);
        Assert.Contains("reference", m.KernelPath);
        using var healthy = Pack(spec, rows, cols, RandomMatrix(spec, rows, cols, 13).Bytes);
        Assert.False(healthy.HasNonFiniteScales);
        var rng = new Random(2);
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var (fast, reference) = FastAndReference(m, x, tokens, 1);
        Assert.Equal(reference, fast);
        Assert.True(float.IsNaN(fast[9]) || float.IsInfinity(fast[9]), "row 9 reads its non-finite scale");
        Assert.True(float.IsFinite(fast[0]));
    }

    [Theory]
    [InlineData(2, 2, 0)] [InlineData(4, 2, 0)] [InlineData(6, 2, 0)] [InlineData(4, 4, 0)] [InlineData(0, 2, 4)]
    [InlineData(2, 2, 4)] [InlineData(4, 2, 4)] [InlineData(6, 2, 4)] [InlineData(0, 1, 2)] [InlineData(7, 1, 2)]
    [InlineData(3, 1, 4)] [InlineData(0, 1, 4)] [InlineData(5, 1, 4)]
    public void Byte_fields_extract_like_shift_and_mask_for_every_byte(int from, int width, int to)
    {
        if (!Avx2.IsSupported) return; // 256-bit unpacking is used by the AVX2/VNNI kernels only
        // Every byte value in the even bytes, each beside 16 different odd neighbours (the shift path shifts 16-bit
        // lanes, so a neighbour's bits must not leak in).
        for (int high = 0; high < 256; high += 17)
        {
            var bytes = new byte[32];
            for (int i = 1; i < 32; i += 2) bytes[i] = (byte)(high ^ 0xA5);
            for (int lowBase = 0; lowBase < 256; lowBase += 16)
            {
                for (int i = 0; i < 32; i += 2) bytes[i] = (byte)(lowBase + i / 2);
                var v = System.Runtime.Intrinsics.Vector256.Create(bytes);
                var viaDefault = ByteFields.Extract(v, from, width, to);
                var viaShift = ByteFields.ExtractByShift(v, from, width, to);
                for (int i = 0; i < 32; i++)
                {
                    byte expected = (byte)(((bytes[i] >> from) & ((1 << width) - 1)) << to);
                    Assert.Equal(expected, viaDefault[i]);
                    Assert.Equal(expected, viaShift[i]);
                }
            }
        }
    }

    [Fact]
    public void Activation_codes_simd_equals_scalar_including_ties()
    {
        var rng = new Random(12);
        // Values on exact .5 ties of the scale, and random ones.
        var x = Enumerable.Range(0, 256).Select(i => i % 3 == 0 ? (i % 254 - 127) + 0.5f : (float)(rng.NextDouble() * 254 - 127)).ToArray();
        x[7] = 127f;
        var fast = new sbyte[x.Length];
        var scalar = new sbyte[x.Length];
        ActivationQuantizer.Codes(x, 1f, fast);
        ActivationQuantizer.CodesReference(x, 1f, scalar);
        Assert.Equal(scalar, fast);
        ActivationQuantizer.Codes([2.5f, -3.5f, 0.5f, 1.5f], 1f, fast.AsSpan(0, 4));
        Assert.Equal(new sbyte[] { 2, -4, 0, 2 }, fast[..4]);
        // The 128-bit path (ARM64's), whichever path this CPU takes above.
        var narrow = new sbyte[x.Length];
        Assert.Equal(x.Length, ActivationQuantizer.Codes128(x, 1f, narrow));
        Assert.Equal(scalar, narrow);
        var ties = new sbyte[16];
        ActivationQuantizer.Codes128([2.5f, -3.5f, 0.5f, 1.5f, -0.5f, -2.5f, 126.5f, -126.5f, 3, 0, -1, 4.5f, 5.5f, -6.5f, 7.49f, -7.51f], 1f, ties);
        Assert.Equal(new sbyte[] { 2, -4, 0, 2, 0, -2, 126, -126, 3, 0, -1, 4, 6, -6, 7, -8 }, ties);
    }

    [Fact]
    public void Per_token_scale_keeps_bitnet_int8_codes_exact()
    {
        // Activations that are already k/s for integers k (BitNet's A8): one scale for the row recovers k exactly,
        // where per-block scales would requantize blocks whose largest value is below the row's.
        int cols = 512;
        var rng = new Random(2);
        var k = Enumerable.Range(0, cols).Select(_ => rng.Next(-40, 41)).ToArray();
        k[300] = 127;
        float s = 127f / 3.7f;
        var x = k.Select(v => v / s).ToArray();
        using var a = new QuantizedActivations(1, cols, 256);
        fixed (float* p = x) a.Quantize(p, 1, cols, perTokenScale: true);
        for (int i = 0; i < cols; i++) Assert.Equal(k[i], a.Codes(0)[i]);
        Assert.Equal(a.Scales(0)[0], a.Scales(0)[1]);
        int sum = 0;
        for (int i = 0; i < 16; i++) sum += k[i];
        Assert.Equal(sum, (int)a.Sums16(0)[0]);
    }

    [Fact]
    public void Wrong_byte_counts_and_ragged_rows_are_refused()
    {
        var e = Assert.Throws<AnyBitException>(() => PackedMatrix.Create(TensorType.Q4_0, 4, 64, new byte[10]));
        Assert.Contains("needs", e.Message);
        Assert.Throws<AnyBitException>(() => PackedMatrix.Create(TensorType.Q4_K, 1, 100, new byte[144]));
        Assert.False(PackedMatrix.Supports(TensorType.F16));
    }
    /// <summary>
    /// IQ4_XS's extremes: table entries −127 and 113 (indices 0 and 15) at sub-scales −32 and 31 against activations of
    /// ±127, where the AVX2 sign trick's pairs reach 2·127·127 = 32258 and a product of unsigned entries (+128) would
    /// saturate int16. Built from raw blocks, every SIMD path, one to four tokens, against the reference.
    /// </summary>
    [Fact]
    public void Iq4_xs_extreme_entries_against_extreme_activations_are_exact()
    {
        int rows = 16, cols = 512, tokens = 4, blocks = rows * cols / 256;
        var bytes = new byte[blocks * 136]; // d (f16), scales_h, scales_l[4], qs[128]
        for (int b = 0; b < blocks; b++)
        {
            var block = bytes.AsSpan(b * 136, 136);
            BitConverter.TryWriteBytes(block, (Half)0.5f);
            bool low = b % 2 == 0;
            ushort high = low ? (ushort)0 : (ushort)0xFFFF; // ls = 0 (sub-scale −32) or 63 (31)
            BitConverter.TryWriteBytes(block[2..], high);
            block.Slice(4, 4).Fill(low ? (byte)0x00 : (byte)0xFF);
            block.Slice(8, 128).Fill((b / 2) % 2 == 0 ? (byte)0x00 : (byte)0xFF); // all index 0 (−127) or 15 (113)
        }
        using var m = Pack("IQ4_XS", rows, cols, bytes, MatrixLayout.Interleaved);
        var kind = KindOf("IQ4_XS");
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (i / cols) switch { 0 => 1, 1 => -1, 2 => i % 2 == 0 ? 1 : -1, _ => -1 + 2 * (i % 3 == 0 ? 1 : 0) };
        using var a = new QuantizedActivations(tokens, cols, m.ActivationBlock);
        fixed (float* px = x) a.Quantize(px, tokens, cols);
        foreach (var (path, kernel) in SimdPaths().Select(p => (string)p[0]).Select(p => (p, KernelFor(p, kind))))
            foreach (int width in new[] { 8, 16 })
                foreach (int step in new[] { 1, 2, 4 })
                {
                    var y = new float[4 * width];
                    fixed (float* py = y) kernel(m.Group(0), m.SuperBlocks, a.Codes(0), a.Scales(0), a.Sums16(0), a.LaneSums(0), py, width, step, width);
                    for (int u = 0; u < step; u++)
                        for (int r = 0; r < width; r++)
                            Assert.True(ReferenceKernel.Row(m, r, a, u) == y[width * u + r], $"{path}, {width} rows, {step} tokens: row {r} token {u}");
                }
        // The reference itself against the integers written here: row 0, token 0 (x = 1 everywhere, so codes 127).
        double expected = 0;
        for (int b = 0; b < cols / 256; b++)
        {
            int block = b; // row 0's blocks are the first cols/256
            int sc = block % 2 == 0 ? -32 : 31, v = (block / 2) % 2 == 0 ? -127 : 113;
            expected += 0.5 * sc * v * 127 * 256 * a.Scales(0)[b];
        }
        Assert.Equal(expected, ReferenceKernel.Row(m, 0, a, 0), 1e-3 * Math.Abs(expected));
    }

    /// <summary>
    /// MXFP4's extreme entries (±6, doubled: table entries 0 and 24 around the offset −12) against activations of ±127,
    /// where a token's eight product vectors overflow int16 before the offset term joins them (the AVX2 prefill tile
    /// sums them in wrapping int16 lanes: exact only because the final lane fits). Whole blocks of one sign and blocks
    /// of alternating signs, every SIMD path, 1 to 8 tokens and 8, 16 and 13 rows, against the reference, and the
    /// reference against the integers written here.
    /// </summary>
    [Fact]
    public void Mxfp4_extreme_entries_against_extreme_activations_are_exact()
    {
        int rows = 16, cols = 256, tokens = QuantizedMatMul.MaxTokensPerCall, blocks = rows * cols / 32;
        var bytes = new byte[blocks * 17]; // e (E8M0), qs[16]: element j in qs[j % 16]'s low nibble (j < 16) or high
        for (int b = 0; b < blocks; b++)
        {
            bytes[b * 17] = 127;
            // index 7 is +6 (entry 24), 15 is −6 (entry 0): by block, all +6 (twice), all −6, or +6 at columns 4k and
            // 4k+1 and −6 at 4k+2 and 4k+3 (one sign per int16 lane of the tile's pairs)
            for (int i = 0; i < 16; i++)
                bytes[b * 17 + 1 + i] = (b % 4) switch { 0 or 1 => 0x77, 2 => 0xFF, _ => i % 4 < 2 ? (byte)0x77 : (byte)0xFF };
        }
        using var m = Pack("MXFP4", rows, cols, bytes, MatrixLayout.Interleaved);
        var kind = KindOf("MXFP4");
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++)
        {
            int t = i / cols, c = i % cols;
            x[i] = (t % 4) switch { 0 => 1, 1 => -1, 2 => c % 4 < 2 ? 1 : -1, _ => c % 2 == 0 ? -1 : 1 };
        }
        using var a = new QuantizedActivations(tokens, cols, m.ActivationBlock);
        fixed (float* px = x) a.Quantize(px, tokens, cols);
        foreach (var (path, kernel) in SimdPaths().Select(p => (string)p[0]).Select(p => (p, KernelFor(p, kind))))
            foreach (int width in new[] { 8, 16, 13 })
                foreach (int step in Enumerable.Range(1, tokens))
                {
                    var y = new float[tokens * 16];
                    fixed (float* py = y) kernel(m.Group(0), m.SuperBlocks, a.Codes(0), a.Scales(0), a.Sums16(0), a.LaneSums(0), py, width, step, 16);
                    for (int u = 0; u < step; u++)
                        for (int r = 0; r < width; r++)
                            Assert.True(ReferenceKernel.Row(m, r, a, u) == y[16 * u + r], $"{path}, {width} rows, {step} tokens: row {r} token {u}");
                }
        // Row 0, token 0 (codes 127 everywhere): its blocks are the first cols/32, d = 2^(127 − 128) · dx.
        double expected = 0;
        for (int b = 0; b < cols / 32; b++)
            expected += 0.5 * ((b % 4) switch { 0 or 1 => 12, 2 => -12, _ => 0 }) * 32 * 127 * a.Scales(0)[b];
        Assert.NotEqual(0, expected);
        Assert.Equal(expected, ReferenceKernel.Row(m, 0, a, 0), 1e-3 * Math.Abs(expected) + 1e-6);
    }
}
