using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>
/// The IQ2 types beyond the llama.cpp fixtures (GgmlQuantTests): the importance-matrix requirement, and hostile
/// blocks and files. Their indices cannot leave the tables: IQ2_XXS reads 8-bit indices into 256 grid points, IQ2_XS
/// 9-bit into 512, IQ2_S 10-bit into 1024, and every sign index is 7 bits into 128 entries, so any bytes decode.
/// </summary>
public class IQ2FormatTests
{
    public static TheoryData<string> Types => new() { "IQ2_XXS", "IQ2_XS", "IQ2_S" };

    [Theory]
    [InlineData("IQ2_XXS")]
    [InlineData("IQ2_XS")]
    public void Types_llama_cpp_requires_an_importance_matrix_for_are_refused_without_one(string type)
    {
        var f = FormatTable.ByName(type)!;
        Assert.True(f.RequiresImportance && f.UsesImportance);
        var x = new float[512];
        var y = new byte[f.ByteSize(x.Length)];
        foreach (var attempt in new Action[] { () => f.QuantizeRow(x, y), () => f.QuantizeRow(x, y, default), () => f.Quantize(x, 256, y), () => f.Quantize(x, 256, y, default) })
        {
            var e = Assert.Throws<AnyBitException>(attempt);
            Assert.Contains("importance matrix", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        f.Quantize(x, 256, y, Enumerable.Repeat(1f, 256).ToArray()); // all-zero rows: a zero block, no error
        Assert.All(y, b => Assert.Equal(0, b));
    }

    [Fact]
    public void IQ2_S_quantizes_without_an_importance_matrix_as_ggml_does()
    {
        var f = FormatTable.ByName("IQ2_S")!;
        Assert.False(f.RequiresImportance);
        Assert.True(f.UsesImportance);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Any_block_bytes_decode(string type)
    {
        var f = FormatTable.ByName(type)!;
        var rng = new Random(type.Length);
        var bytes = new byte[f.BytesPerBlock * 64];
        rng.NextBytes(bytes);
        for (int b = 0; b < 64; b++) BitConverter.TryWriteBytes(bytes.AsSpan(b * f.BytesPerBlock), (Half)(rng.NextDouble() - 0.5)); // finite d
        var values = new float[256 * 64];
        f.Dequantize(bytes, values);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Truncated_or_misshapen_tensors_are_refused_in_one_line(string type)
    {
        var f = FormatTable.ByName(type)!;
        int data = f.BytesPerBlock * 2, padding = (32 - data % 32) % 32;
        // The last byte of the tensor cut off; rows that are not whole blocks.
        foreach (var (ne, cut) in new (ulong[], int)[] { ([256, 2], padding + 1), ([255, 2], 0) })
        {
            var b = new GgufBuilder();
            b.KvString("general.architecture", "llama");
            b.Tensor("t", ne, (uint)f.Type, new byte[data]);
            var bytes = b.Build();
            string path = Path.Combine(Shared.TempDir(), "iq2.gguf");
            File.WriteAllBytes(path, bytes[..^cut]);
            var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
            Assert.DoesNotContain('\n', e.Message);
        }
    }
}
