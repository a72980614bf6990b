using AnyBit.Formats;
using AnyBit.IO;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The format table itself: every row has a size that matches ggml's block struct, a name that parses back to it, a
/// reference quantizer and dequantizer that round-trip, and either a kernel binding or the explicit float-path
/// marker. New rows are tested here without being listed.
/// </summary>
public class FormatTableTests
{
    /// <summary>sizeof(block_*) from ggml-common.h's static_asserts (and ggml.c's type_traits for the float types).</summary>
    private static readonly Dictionary<TensorType, (int BlockSize, int Bytes)> GgmlSizes = new()
    {
        [TensorType.F32] = (1, 4), [TensorType.F16] = (1, 2), [TensorType.BF16] = (1, 2),
        [TensorType.Q4_0] = (32, 18), [TensorType.Q4_1] = (32, 20), [TensorType.Q5_0] = (32, 22), [TensorType.Q5_1] = (32, 24),
        [TensorType.Q8_0] = (32, 34), [TensorType.Q2_K] = (256, 84), [TensorType.Q3_K] = (256, 110), [TensorType.Q4_K] = (256, 144),
        [TensorType.Q5_K] = (256, 176), [TensorType.Q6_K] = (256, 210), [TensorType.IQ4_NL] = (32, 18), [TensorType.TQ1_0] = (256, 54),
        [TensorType.TQ2_0] = (256, 66), [TensorType.MXFP4] = (32, 17), [TensorType.IQ4_XS] = (256, 136),
        [TensorType.IQ2_XXS] = (256, 66), [TensorType.IQ2_XS] = (256, 74), [TensorType.IQ2_S] = (256, 82),
        [TensorType.IQ1_S] = (256, 50), [TensorType.IQ1_M] = (256, 56),
        [TensorType.IQ3_XXS] = (256, 98), [TensorType.IQ3_S] = (256, 110),
        // bitnet.cpp's fork declares I2_S as blocks of 1 element, 1 byte, and special-cases ggml_nbytes as n/4 + 32:
        // 128 weights in 32 bytes is the block its dequantize_row_i2_s walks, the 32 bytes its per-tensor scale tail.
        [TensorType.I2_S] = (128, 32),
    };

    public static TheoryData<string> GgmlRows => new(FormatTable.Ggml.Select(f => f.TypeName));

    [Theory]
    [MemberData(nameof(GgmlRows))]
    public void Block_layout_matches_ggml(string type)
    {
        var row = FormatTable.ByName(type)!;
        Assert.True(GgmlSizes.TryGetValue(row.Type, out var size), $"{type} has no size test: add ggml's sizeof(block_{type.ToLowerInvariant()}) here");
        Assert.Equal(size.BlockSize, row.BlockSize);
        Assert.Equal(size.Bytes, row.BytesPerBlock);
        Assert.Equal(size.Bytes, TensorTypes.Traits(row.Type).BytesPerBlock);
    }

    [Theory]
    [MemberData(nameof(GgmlRows))]
    public void Name_and_type_id_lead_back_to_the_row(string type)
    {
        var row = FormatTable.ByName(type)!;
        Assert.Same(row, FormatRegistry.Parse(row.Name));
        Assert.Same(row, FormatTable.ByType(row.Type));
        Assert.Equal(type, Enum.GetName(row.Type));
        Assert.Contains(row.Name, FormatRegistry.ValidForms);
    }

    [Fact]
    public void Ids_known_only_by_size_have_no_row()
    {
        foreach (var type in TensorTypes.UndecodableTypes)
            Assert.Null(FormatTable.ByType(type));
    }

    /// <summary>Every writable format: ggml rows and each family's representative specs.</summary>
    private static IEnumerable<string> Specs => FormatTable.Ggml.Select(f => f.Name).Concat(FormatRegistry.Families.SelectMany(f => f.Examples));
    public static TheoryData<string> AllSpecs => new(Specs);

    /// <summary>
    /// The reference quantizer and dequantizer agree: quantizing what was dequantized gives the same bytes back for
    /// the formats that are idempotent, and every format reconstructs smooth data within its precision.
    /// </summary>
    [Theory]
    [MemberData(nameof(AllSpecs))]
    public void Reference_quantizer_and_dequantizer_round_trip(string spec)
    {
        var format = FormatRegistry.Parse(spec).Bind(512);
        int rows = 4, cols = 512;
        var rng = new Random(5);
        var x = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var bytes = new byte[format.ByteSize(x.Length)];
        // Types llama.cpp only quantizes with an importance matrix get a flat one.
        format.Quantize(x, cols, bytes, format.RequiresImportance ? Enumerable.Repeat(1f, cols).ToArray() : default);
        var back = new float[x.Length];
        format.Dequantize(bytes, back);
        double err = 0, norm = 0;
        for (int i = 0; i < x.Length; i++) { err += (back[i] - x[i]) * (back[i] - x[i]); norm += x[i] * x[i]; }
        // Uniform data in [-1, 1]: even a 1-bit or ternary code keeps the sign of most weights.
        Assert.True(Math.Sqrt(err / norm) < 0.75, $"{spec}: relative RMS error {Math.Sqrt(err / norm):F3}");
        Assert.All(back, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>A format either runs on the integer kernels (a kind whose block decoder reproduces its dequantizer
    /// is checked by QuantizedKernelTests) or is marked for the float path; the marker is a null kind, stated by
    /// every format class, and these are the formats that carry it.</summary>
    [Fact]
    public void Float_path_formats_are_the_expected_ones()
    {
        var floatPath = Specs.Where(s => FormatRegistry.Parse(s).Kind is null).ToHashSet();
        Assert.Equal(
            new[] { "f32", "f16", "bf16", "i2_s", "int2:channel", "int8:tensor:sym", "int2:g32:min", "int4:channel:min", "nf4:g16", "e2m1fn:g16", "e4m3", "e4m3fn:g32:f32", "mxfp8_e4m3", "mxfp8_e5m2", "nvfp4", "cb4:g128", "cb2:g64", "cb1:g32" }.Order(),
            floatPath.Order());
    }
}
