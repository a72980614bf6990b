using System.Security.Cryptography;
using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>
/// ggml block types against llama.cpp's own bytes (../shared/fixtures/ggml): quantizing the F32 source gives exactly
/// llama-quantize's blocks, and dequantizing them gives exactly llama.cpp's floats.
/// </summary>
public class GgmlQuantTests
{
    /// <summary>ggml types llama.cpp has no fixture for here; each is checked against its written-out rule instead.</summary>
    private static readonly string[] RuleChecked = ["MXFP4"];

    /// <summary>Every ggml block type of the format table that has a llama.cpp fixture in ../shared (the others have
    /// local fixtures or a rule test: see <see cref="Every_ggml_block_type_has_a_llama_cpp_fixture_or_a_rule_test"/>).</summary>
    public static TheoryData<string> AllTypes => new(FormatTable.Ggml.Where(f => f.Kind is not null && File.Exists(Shared.Fixture("ggml", f.TypeName + ".gguf"))).Select(f => f.TypeName));
    public static TheoryData<string> QuantizableTypes => AllTypes;

    [Fact]
    public void Every_llama_cpp_fixture_type_has_a_row()
    {
        foreach (string file in Directory.GetFiles(Shared.Fixture("ggml"), "*.gguf").Where(f => !Path.GetFileName(f).StartsWith("source", StringComparison.Ordinal)))
            Assert.True(FormatTable.ByName(Path.GetFileNameWithoutExtension(file)) is not null, $"{Path.GetFileName(file)} has no row in the format table");
    }

    [Fact]
    public void Every_ggml_block_type_has_a_llama_cpp_fixture_or_a_rule_test()
    {
        foreach (var f in FormatTable.Ggml.Where(f => f.BlockSize > 1))
            Assert.True(RuleChecked.Contains(f.TypeName) || File.Exists(Shared.Fixture("ggml", f.TypeName + ".gguf")) || LocalFixtures.Any(d => FixtureType(d) == f.TypeName),
                $"{f.TypeName} has neither a llama.cpp fixture (../shared/fixtures/ggml or Fixtures/ggml) nor a rule test");
    }

    /// <summary>The project's own llama.cpp fixtures (Fixtures/ggml, made as its manifest says) for types ../shared lacks.</summary>
    private static string LocalFixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", "ggml", .. parts]);

    /// <summary>The types of the local fixture folders: a folder is named for its type, with a suffix after a '.' where
    /// a type has more than one (IQ3_S.plain: without an importance matrix).</summary>
    private static readonly HashSet<string> LocalFixtures = LocalFolders().Select(TypeOfFolder).ToHashSet();

    private static IEnumerable<string> LocalFolders() => Directory.GetDirectories(LocalFixture()).Select(Path.GetFileName).OfType<string>();

    private static string TypeOfFolder(string folder) => folder.Split('.')[0];

    public static TheoryData<string> LocalTypes => new(LocalFolders().Order());

    /// <summary>A fixture folder's type: its name up to the first '.' (<c>Q4_K.imatrix</c> holds Q4_K made with an imatrix).</summary>
    private static string FixtureType(string folder) => folder.Split('.')[0];

    /// <summary>
    /// The local fixtures: blocks written by llama-quantize (with the importance matrix its manifest names, if any), the
    /// sha256 of ggml's dequantization. Quantizing with the same importance matrix, read as llama.cpp reads it, must give
    /// the same bytes.
    /// </summary>
    [Theory]
    [MemberData(nameof(LocalTypes))]
    public void Local_fixtures_dequantize_bit_exact_and_quantize_byte_identical(string folder)
    {
        string type = TypeOfFolder(folder);
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(LocalFixture(folder, "manifest.json")));
        var entry = manifest.RootElement;
        var row = FormatTable.ByName(FixtureType(type));
        Assert.True(row is not null, $"{type} has a fixture but no row in the format table");
        var imatrixPath = entry.GetProperty("imatrix").GetString();
        var imatrix = imatrixPath is null ? null : AnyBit.Quantization.Methods.ImportanceMatrix.Read(Path.Combine(AppContext.BaseDirectory, "Fixtures", imatrixPath));
        using var source = GgufFile.Open(Shared.Fixture("ggml", "source-f32.gguf"));
        foreach (var tensor in entry.GetProperty("tensors").EnumerateObject())
        {
            var want = File.ReadAllBytes(LocalFixture(folder, tensor.Name + ".bin"));
            var t = source.Find(tensor.Name)!;
            var x = t.ToFloat32();
            var values = new float[x.Length];
            row!.Dequantize(want, values);
            string sha = Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
            Assert.True(tensor.Value.GetProperty("dequant_sha256").GetString() == sha, $"{type} {tensor.Name}: dequantization differs from llama.cpp's");
            var got = new byte[want.Length];
            int cols = (int)t.Shape[^1];
            row.Quantize(x, cols, got, imatrix is null ? default : imatrix[tensor.Name]);
            int blockBytes = row.BytesPerBlock, differing = 0, firstBad = -1;
            for (int b = 0; b < got.Length / blockBytes; b++)
                if (!got.AsSpan(b * blockBytes, blockBytes).SequenceEqual(want.AsSpan(b * blockBytes, blockBytes)))
                {
                    differing++;
                    if (firstBad < 0) firstBad = b;
                }
            Assert.True(differing == 0, $"{type} {tensor.Name}: {differing} of {got.Length / blockBytes} blocks differ (first: block {firstBad})");
        }
    }

    /// <summary>
    /// A type llama.cpp quantizes only with an importance matrix refuses without one: one AnyBitException with the
    /// reason, from a row and from a whole tensor (not one per row from the parallel loop).
    /// </summary>
    [Theory]
    [InlineData("IQ1_S")]
    public void Types_requiring_an_importance_matrix_refuse_without_one(string type)
    {
        var f = FormatTable.ByName(type)!;
        Assert.True(f.RequiresImportance && f.UsesImportance);
        var x = Enumerable.Range(0, 4 * f.BlockSize).Select(i => MathF.Sin(i)).ToArray();
        var y = new byte[f.ByteSize(x.Length)];
        Assert.Contains("importance matrix", Assert.Throws<AnyBitException>(() => f.QuantizeRow(x, y)).Message);
        Assert.Contains("importance matrix", Assert.Throws<AnyBitException>(() => f.Quantize(x, f.BlockSize, y)).Message);
        Assert.Contains("importance matrix", Assert.Throws<AnyBitException>(() => f.Quantize(x, f.BlockSize, y, default)).Message);
        f.Quantize(x, f.BlockSize, y, Enumerable.Repeat(1f, f.BlockSize).ToArray());
    }

    private static readonly string[] Tensors = ["blk.0.attn_q.weight", "blk.3.ffn_down.weight", "blk.7.attn_v.weight"];

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Dequantization_is_bit_exact_with_llama_cpp(string type)
    {
        using var g = GgufFile.Open(Shared.Fixture("ggml", type + ".gguf"));
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Shared.Fixture("ggml", "manifest.json")));
        var entries = manifest.RootElement.GetProperty("files").GetProperty(type + ".gguf").GetProperty("tensors");
        foreach (string name in Tensors)
        {
            var values = g.Find(name)!.ToFloat32();
            var stored = g.Find(name + ".dequant")!.ToFloat32();
            Assert.Equal(stored, values.AsSpan(0, stored.Length).ToArray());
            string sha = Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
            Assert.Equal(entries.GetProperty(name).GetProperty("dequant_sha256_full").GetString(), sha);
        }
    }

    [Theory]
    [MemberData(nameof(QuantizableTypes))]
    public void Quantization_is_byte_identical_to_llama_quantize(string type)
    {
        using var source = GgufFile.Open(Shared.Fixture("ggml", "source-f32.gguf"));
        using var expected = GgufFile.Open(Shared.Fixture("ggml", type + ".gguf"));
        var traits = TensorTypes.Traits(Enum.Parse<TensorType>(type));
        foreach (string name in Tensors)
        {
            var x = source.Find(name)!.ToFloat32();
            var want = expected.Find(name)!.Bytes;
            var got = new byte[want.Length];
            FormatTable.ByName(type)!.QuantizeRow(x, got);
            int blockBytes = traits.BytesPerBlock, differing = 0, firstBad = -1;
            for (int b = 0; b < got.Length / blockBytes; b++)
                if (!got.AsSpan(b * blockBytes, blockBytes).SequenceEqual(want.Slice(b * blockBytes, blockBytes)))
                {
                    differing++;
                    if (firstBad < 0) firstBad = b;
                }
            Assert.True(differing == 0, $"{type} {name}: {differing} of {got.Length / blockBytes} blocks differ (first: block {firstBad})");
        }
    }
}

/// <summary>MXFP4 (no llama.cpp fixture): quantization against the rule in docs/FORMATS, written out here.</summary>
public class Mxfp4Tests
{
    [Fact]
    public void Mxfp4_blocks_follow_ggml_rule()
    {
        var rng = new Random(21);
        var x = Enumerable.Range(0, 32 * 64).Select(_ => (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-6, 6)))).ToArray();
        int[] table = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
        var got = new byte[x.Length / 32 * 17];
        FormatTable.ByType(TensorType.MXFP4)!.QuantizeRow(x, got);
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = x.Skip(32 * b).Take(32).Max(Math.Abs);
            int e = (int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127);
            Assert.Equal((byte)e, got[17 * b]);
            float scale = MathF.Pow(2, e - 128);
            for (int j = 0; j < 32; j++)
            {
                int best = 0;
                for (int i = 1; i < 16; i++)
                    if (MathF.Abs(table[i] * scale - x[32 * b + j]) < MathF.Abs(table[best] * scale - x[32 * b + j])) best = i;
                byte packed = got[17 * b + 1 + j % 16];
                Assert.Equal(best, j < 16 ? packed & 0xF : packed >> 4);
            }
        }
        var back = new float[x.Length];
        FormatTable.ByType(TensorType.MXFP4)!.Dequantize(got, back);
        for (int b = 0; b < x.Length / 32; b++)
            for (int j = 0; j < 32; j++)
            {
                byte packed = got[17 * b + 1 + j % 16];
                Assert.Equal(table[j < 16 ? packed & 0xF : packed >> 4] * MathF.Pow(2, got[17 * b] - 128), back[32 * b + j]);
            }
    }
}
