using System.Buffers.Binary;
using System.Text;
using AnyBit.IO;
using AnyBit.Formats;

namespace AnyBit.Tests;

public class SafetensorsTests
{
    private static string WriteRaw(string headerJson, int dataBytes, long? lengthOverride = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(lengthOverride ?? header.Length));
        header.CopyTo(bytes, 8);
        string path = Path.Combine(Shared.TempDir(), "t.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Writer_round_trips_every_dtype()
    {
        string path = Path.Combine(Shared.TempDir(), "rt.safetensors");
        var w = new SafetensorsWriter().AddMetadata("format", "pt");
        w.Add("f32", [2, 3], new float[] { 1, -2, 3.5f, 0, float.MaxValue, -0f });
        w.Add("i32", [3], new[] { 1, -7, int.MaxValue });
        w.Add("bf16", TensorType.BF16, [2], [0x80, 0x3F, 0x00, 0xC0]);        // 1.0, -2.0
        w.Add("f16", TensorType.F16, [1], [0x00, 0x3C]);                      // 1.0
        w.Add("e4m3", TensorType.F8_E4M3, [2], [0x38, 0x7E]);                  // 1.0, 448
        w.Add("e5m2", TensorType.F8_E5M2, [2], [0x3C, 0x7B]);                  // 1.0, 57344
        w.Add("i8", TensorType.I8, [2], [0xFF, 0x05]);
        w.Add("u8", TensorType.U8, [2], [0xFF, 0x05]);
        w.Add("i64", TensorType.I64, [1], BitConverter.GetBytes(-3L));
        w.Write(path);
        using var st = SafetensorsFile.Open(path);
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.Equal(new float[] { 1, -2, 3.5f, 0, float.MaxValue, -0f }, st.Find("f32")!.ToFloat32());
        Assert.Equal(new long[] { 2, 3 }, st.Find("f32")!.Shape);
        Assert.Equal(new float[] { 1, -7, int.MaxValue }, st.Find("i32")!.ToFloat32());
        Assert.Equal(new float[] { 1, -2 }, st.Find("bf16")!.ToFloat32());
        Assert.Equal(new float[] { 1 }, st.Find("f16")!.ToFloat32());
        Assert.Equal(new float[] { 1, 448 }, st.Find("e4m3")!.ToFloat32());
        Assert.Equal(new float[] { 1, 57344 }, st.Find("e5m2")!.ToFloat32());
        Assert.Equal(new float[] { -1, 5 }, st.Find("i8")!.ToFloat32());
        Assert.Equal(new float[] { 255, 5 }, st.Find("u8")!.ToFloat32());
        Assert.Equal(new float[] { -3 }, st.Find("i64")!.ToFloat32());
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.partial"));
    }

    /// <summary>bfloat16 and float8 decoders against the ml_dtypes tables in the format fixtures.</summary>
    [Theory]
    [InlineData("bfloat16")]
    [InlineData("float8_e4m3fn")]
    [InlineData("float8_e5m2")]
    public void Decoders_match_ml_dtypes(string type)
    {
        string file = Shared.Fixture("formats", type + ".safetensors");
        using var st = SafetensorsFile.Open(file);
        var encoded = st.Find("encoded")!;
        var decoded = st.Find("decoded")!.ToFloat32();
        var bytes = encoded.Bytes;
        for (int i = 0; i < decoded.Length; i++)
        {
            float got = type switch
            {
                "bfloat16" => BFloat16.ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..])),
                "float8_e4m3fn" => Float8.E4M3FnToSingle(bytes[i]),
                _ => Float8.E5M2ToSingle(bytes[i]),
            };
            if (float.IsNaN(decoded[i])) Assert.True(float.IsNaN(got), $"value {i}");
            else Assert.Equal(BitConverter.SingleToInt32Bits(decoded[i]), BitConverter.SingleToInt32Bits(got));
        }
        if (type == "bfloat16")
        {
            var input = st.Find("input")!.ToFloat32();
            for (int i = 0; i < input.Length; i++)
            {
                ushort want = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]);
                ushort got = BFloat16.FromSingle(input[i]);
                if (float.IsNaN(input[i])) Assert.True(float.IsNaN(BFloat16.ToSingle(got)));
                else Assert.Equal(want, got);
            }
        }
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, null, null)] // valid
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, 1_000_000_000L, "exceeds")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, 90_000L, "past the end")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]""", 8, null, "not valid JSON")]
    [InlineData("""[1,2,3]""", 8, null, "not a JSON object")]
    [InlineData("""{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}""", 8, null, "unsupported dtype 'Q9'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, null, "needs 12")]
    [InlineData("""{"a":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,100000000000]}}""", 8, null, "past the end")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, null, "overlap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, null, "invalid dimension")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", 8, null, "invalid data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[9223372036854775807, 4],"data_offsets":[0,8]}}""", 8, null, "too large")]
    [InlineData("""{"a":{"shape":[2],"data_offsets":[0,8]}}""", 8, null, "no dtype")]
    public void Header_is_validated_before_data_is_touched(string header, int dataBytes, long? lengthOverride, string? problem)
    {
        string path = WriteRaw(header, dataBytes, lengthOverride);
        if (problem is null)
        {
            using var ok = SafetensorsFile.Open(path);
            Assert.Single(ok.Tensors);
            return;
        }
        var e = Assert.Throws<InvalidModelFileException>(() => SafetensorsFile.Open(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void Sharded_checkpoint_presents_all_shards_as_one()
    {
        using var ckpt = SafetensorsCheckpoint.OpenFolder(Shared.Fixture("models", "llama3-bpe"));
        Assert.Equal(3, ckpt.Files.Count);
        Assert.NotNull(ckpt.Find("model.embed_tokens.weight"));
        Assert.NotNull(ckpt.Find("model.layers.1.mlp.down_proj.weight"));
    }

    [Fact]
    public void Listing_tensors_does_not_read_the_data()
    {
        // A 1 GiB sparse file whose header declares one tensor: opening it must cost only the header.
        string path = Path.Combine(Shared.TempDir(), "big.safetensors");
        var header = Encoding.UTF8.GetBytes("""{"w":{"dtype":"BF16","shape":[32768,16384],"data_offsets":[0,1073741824]}}""");
        using (var fs = new FileStream(path, FileMode.Create))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
            fs.Write(len);
            fs.Write(header);
            fs.SetLength(8 + header.Length + 1073741824L);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        using var st = SafetensorsFile.Open(path);
        Assert.Equal(1073741824L, st.Find("w")!.ByteLength);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "opening allocated more than 1 MiB");
        File.Delete(path);
    }
}
