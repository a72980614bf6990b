using System.Security.Cryptography;
using AnyBit.IO;

namespace AnyBit.Tests;

public class GgufReaderTests
{
    private static string Write(byte[] bytes)
    {
        string path = Path.Combine(Shared.TempDir(), "test.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Reads_every_metadata_value_type_in_v3_and_v1()
    {
        foreach (uint version in new uint[] { 1, 2, 3 })
        {
            var b = new GgufBuilder { Version = version };
            b.Kv("u8", 0, w => w.Write((byte)200)).Kv("i8", 1, w => w.Write((sbyte)-5)).Kv("u16", 2, w => w.Write((ushort)60000))
             .Kv("i16", 3, w => w.Write((short)-30000)).KvU32("u32", 4000000000).Kv("i32", 5, w => w.Write(-2000000000))
             .KvF32("f32", 1.5f).Kv("bool", 7, w => w.Write((byte)1)).KvString("str", "héllo")
             .Kv("u64", 10, w => w.Write(ulong.MaxValue)).Kv("i64", 11, w => w.Write(long.MinValue)).Kv("f64", 12, w => w.Write(2.25))
             .Kv("arr", 9, w => { w.Write(5u); if (version >= 2) w.Write(3UL); else w.Write(3u); w.Write(1); w.Write(-2); w.Write(3); })
             .KvStringArray("strs", ["a", "bc", ""])
             .Tensor("t", [32, 2], 0, new byte[256]);
            using var g = GgufFile.Open(Write(b.Build()));
            Assert.Equal(version, g.Version);
            Assert.Equal((byte)200, g.Metadata["u8"]);
            Assert.Equal((sbyte)-5, g.Metadata["i8"]);
            Assert.Equal((ushort)60000, g.Metadata["u16"]);
            Assert.Equal((short)-30000, g.Metadata["i16"]);
            Assert.Equal(4000000000u, g.Metadata["u32"]);
            Assert.Equal(-2000000000, g.Metadata["i32"]);
            Assert.Equal(1.5f, g.Metadata["f32"]);
            Assert.Equal(true, g.Metadata["bool"]);
            Assert.Equal("héllo", g.GetString("str"));
            Assert.Equal(ulong.MaxValue, g.Metadata["u64"]);
            Assert.Equal(long.MinValue, g.Metadata["i64"]);
            Assert.Equal(2.25, g.Metadata["f64"]);
            Assert.Equal(new[] { 1, -2, 3 }, (int[])g.GetArray("arr")!.Values);
            Assert.Equal(new[] { "a", "bc", "" }, (string[])g.GetArray("strs")!.Values);
            var t = Assert.Single(g.Tensors);
            Assert.Equal(new long[] { 2, 32 }, t.Shape);
            Assert.Equal(256, t.ByteLength);
        }
    }

    public static TheoryData<string> GgmlFixtures => GgmlQuantTests.AllTypes;

    /// <summary>llama.cpp's own files parse, and every tensor's byte size agrees with the type size table.</summary>
    [Theory]
    [MemberData(nameof(GgmlFixtures))]
    public void Reads_llama_cpp_quantized_files_with_correct_type_sizes(string type)
    {
        using var g = GgufFile.Open(Shared.Fixture("ggml", type + ".gguf"));
        Assert.Equal(6, g.Tensors.Count);
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Shared.Fixture("ggml", "manifest.json")));
        var tensors = manifest.RootElement.GetProperty("files").GetProperty(type + ".gguf").GetProperty("tensors");
        foreach (var entry in tensors.EnumerateObject())
        {
            var t = g.Find(entry.Name)!;
            Assert.Equal(type, TensorTypes.Traits(t.Type).Name);
            Assert.Equal(entry.Value.GetProperty("nbytes").GetInt64(), t.ByteLength);
            Assert.Equal(entry.Value.GetProperty("raw_sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(t.Bytes)));
        }
    }

    /// <summary>Q8_0 and Q4_0 dequantization is bit-identical to llama.cpp's, checked on whole tensors by sha256.</summary>
    [Theory]
    [InlineData("Q8_0")]
    [InlineData("Q4_0")]
    public void Dequantization_matches_llama_cpp_bit_for_bit(string type)
    {
        using var g = GgufFile.Open(Shared.Fixture("ggml", type + ".gguf"));
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Shared.Fixture("ggml", "manifest.json")));
        var tensors = manifest.RootElement.GetProperty("files").GetProperty(type + ".gguf").GetProperty("tensors");
        foreach (var entry in tensors.EnumerateObject())
        {
            var values = g.Find(entry.Name)!.ToFloat32();
            var stored = g.Find(entry.Name + ".dequant")!.ToFloat32();
            Assert.Equal(stored, values.AsSpan(0, stored.Length).ToArray());
            string sha = Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
            Assert.Equal(entry.Value.GetProperty("dequant_sha256_full").GetString(), sha);
        }
    }

    [Theory]
    [InlineData("bad magic")]
    [InlineData("version")]
    [InlineData("tensor count")]
    [InlineData("kv count")]
    [InlineData("string length")]
    [InlineData("value type")]
    [InlineData("ggml type")]
    [InlineData("offset past end")]
    [InlineData("misaligned")]
    [InlineData("alignment")]
    [InlineData("huge dims")]
    [InlineData("block size")]
    public void Hostile_headers_are_refused_with_a_named_problem(string kind)
    {
        var b = new GgufBuilder();
        b.KvString("general.architecture", "llama");
        uint type = 0;
        ulong[] ne = [32, 2];
        byte[] data = new byte[256];
        switch (kind)
        {
            case "tensor count": b.TensorCountOverride = ulong.MaxValue / 2; break;
            case "kv count": b.KvCountOverride = 1UL << 60; break;
            case "string length": b.Kv("k", 8, w => w.Write(1UL << 40)); break;
            case "value type": b.Kv("k", 77, w => w.Write(0)); break;
            case "ggml type": type = 99; break;
            case "offset past end": b.OffsetOverride = 1UL << 40; break;
            case "misaligned": b.OffsetOverride = 3; break;
            case "alignment": b.KvU32("general.alignment", 3); break;
            case "huge dims": ne = [32, 1UL << 40]; break;
            case "block size": type = 8; ne = [33, 2]; data = new byte[34 * 2]; break;
        }
        b.Tensor("t", ne, type, data);
        var bytes = b.Build();
        if (kind == "bad magic") bytes[0] = (byte)'X';
        if (kind == "version") bytes[4] = 9;
        string path = Write(bytes);
        var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.StartsWith(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
