using System.Buffers.Binary;
using System.Text;
using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;
using AnyBit.Quantization.Methods;

namespace AnyBit.Tests;

/// <summary>
/// Importance matrices passing between AnyBit and llama.cpp: the GGUF and imatrix.dat layouts written from the same
/// statistics read back identical, the .dat bytes are llama-imatrix's layout, and a damaged file fails with one line.
/// (Reading llama-imatrix's own file byte for byte is GgmlQuantTests' <c>*.imatrix</c> fixtures.)
/// </summary>
public class ImatrixInterchangeTests
{
    [Fact]
    public void Dat_and_gguf_written_from_the_same_statistics_read_back_identical()
    {
        using var model = ModelLoader.Load(Shared.Fixture("models", "llama3-bpe"));
        var stats = ActivationStatistics.Collect(model, [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11]]);
        string dir = Shared.TempDir();
        try
        {
            string dat = Path.Combine(dir, "a.dat"), gguf = Path.Combine(dir, "a.gguf");
            ImportanceMatrix.Write(stats, model.Config, dat, "text.txt", chunks: 2, chunkSize: 8);
            ImportanceMatrix.Write(stats, model.Config, gguf, "text.txt", chunks: 2, chunkSize: 8);
            Assert.False(GgufFile.HasMagic(dat));
            var fromDat = ImportanceMatrix.Read(dat);
            var fromGguf = ImportanceMatrix.Read(gguf);
            Assert.Equal(model.Config.NumLayers * 7, fromDat.Count);
            AssertIdentical(fromGguf, fromDat);
            // Mean x² as llama-quantize computes it: the float quotient of the float sum and the token count.
            var s = stats.For(1, LinearInput.FeedForwardDown);
            Assert.Equal(s.SumSquares.Select(v => (float)v / 11f).ToArray(), fromDat["blk.1.ffn_down.weight"]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Both_layouts_agree_on_awkward_counts_and_the_gguf_carries_the_keys_llama_quantize_requires()
    {
        var rng = new Random(3);
        float[] Sums(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 1e3)).ToArray();
        var entries = new List<(string, float[], long)>
        {
            ("blk.0.attn_q.weight", Sums(64), 3),
            ("blk.0.ffn_down.weight", Sums(96), 16_777_217), // not exact as float32: both sides round it the same way
            ("blk.0.ffn_up.weight", new float[32], 0),       // never seen: all 1, as llama.cpp reads a zero count
        };
        string dir = Shared.TempDir();
        try
        {
            string dat = Path.Combine(dir, "a.dat"), gguf = Path.Combine(dir, "a.gguf");
            ImportanceMatrix.Write(entries, dat, "book.txt", 5, 512);
            ImportanceMatrix.Write(entries, gguf, "book.txt", 5, 512);
            var fromDat = ImportanceMatrix.Read(dat);
            AssertIdentical(ImportanceMatrix.Read(gguf), fromDat);
            Assert.Equal(entries[0].Item2.Select(v => v / 3f).ToArray(), fromDat["blk.0.attn_q.weight"]);
            Assert.All(fromDat["blk.0.ffn_up.weight"], v => Assert.Equal(1f, v));

            // llama-quantize refuses a GGUF imatrix without these three keys (and reads the two counts as uint32).
            using (var g = GgufFile.Open(gguf))
            {
                Assert.IsType<uint>(g.Metadata["imatrix.chunk_count"]);
                Assert.Equal(5u, g.Metadata["imatrix.chunk_count"]);
                Assert.Equal(512u, g.Metadata["imatrix.chunk_size"]);
                Assert.Equal("book.txt", g.GetArray("imatrix.datasets")!.Values.Cast<string>().Single());
            }

            // The .dat, parsed by llama-quantize's rules (load_imatrix): entries, then chunk count and dataset name.
            var b = File.ReadAllBytes(dat);
            int at = 0;
            int Int() { int v = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(at)); at += 4; return v; }
            Assert.Equal(3, Int());
            foreach (var (name, sums, _) in entries)
            {
                int len = Int();
                Assert.Equal(name, Encoding.UTF8.GetString(b, at, len));
                at += len;
                int ncall = Int(), nval = Int();
                Assert.Equal(sums.Length, nval);
                var values = Enumerable.Range(0, nval).Select(i => BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(at + 4 * i)) / ncall).ToArray();
                at += 4 * nval;
                Assert.Equal(fromDat[name], values);
            }
            Assert.Equal(5, Int());
            int datasetLength = Int();
            Assert.Equal("book.txt", Encoding.UTF8.GetString(b, at, datasetLength));
            Assert.Equal(b.Length, at + datasetLength);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_damaged_dat_fails_with_one_line()
    {
        string dir = Shared.TempDir();
        try
        {
            string good = Path.Combine(dir, "good.dat");
            var entries = new List<(string, float[], long)> { ("blk.0.attn_q.weight", [1, 2, 3, 4], 2), ("blk.0.attn_k.weight", [5, 6], 1) };
            ImportanceMatrix.Write(entries, good, "t", 1, 8);
            byte[] bytes = File.ReadAllBytes(good);
            Assert.Equal(2, ImportanceMatrix.Read(good).Count);
            int entriesEnd = bytes.Length - 4 - 4 - 1; // the trailer (chunk count, dataset) is optional, as for llama.cpp

            string bad = Path.Combine(dir, "bad.dat");
            void Fails(byte[] content, string why)
            {
                File.WriteAllBytes(bad, content);
                var e = Assert.Throws<InvalidModelFileException>(() => ImportanceMatrix.Read(bad));
                Assert.False(e.Message.Contains('\n'), $"{why}: {e.Message}");
            }
            for (int cut = 0; cut < entriesEnd; cut++) Fails(bytes[..cut], $"truncated at {cut}");
            Assert.Equal(2, ImportanceMatrix.Read(Write(bad, bytes[..entriesEnd])).Count);

            byte[] With(int offset, int value)
            {
                var b = (byte[])bytes.Clone();
                BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(offset), value);
                return b;
            }
            int name0 = 4, ncall0 = 4 + 4 + "blk.0.attn_q.weight".Length, count0 = ncall0 + 4;
            foreach (int huge in new[] { int.MaxValue, int.MinValue, -1, 0 })
            {
                Fails(With(0, huge), $"entry count {huge}");
                Fails(With(name0, huge), $"name length {huge}");
                Fails(With(count0, huge), $"value count {huge}");
            }
            var nan = (byte[])bytes.Clone();
            BinaryPrimitives.WriteSingleLittleEndian(nan.AsSpan(count0 + 4 + 8), float.NaN);
            Fails(nan, "NaN value");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_gguf_imatrix_with_sums_but_no_counts_fails_with_one_line()
    {
        string dir = Shared.TempDir();
        try
        {
            string path = Path.Combine(dir, "a.gguf");
            float[] sums = [1, 2, 3, 4];
            var w = new GgufWriter();
            w.Add("general.type", "imatrix");
            w.AddTensor("blk.0.attn_q.weight.in_sum2", [4], (uint)TensorType.F32, 16, dst => System.Runtime.InteropServices.MemoryMarshal.AsBytes(sums.AsSpan()).CopyTo(dst));
            w.Write(path);
            var e = Assert.Throws<InvalidModelFileException>(() => ImportanceMatrix.Read(path));
            Assert.DoesNotContain("\n", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// <c>quantize --imatrix</c> with a ggml type weights exactly the tensors the file names, each as the type's
    /// weighted quantizer does given that entry; every other tensor keeps the unweighted bytes. An entry that does not
    /// fit its matrix is an error, as in llama-quantize.
    /// </summary>
    [Fact]
    public void Quantize_with_an_imatrix_weights_exactly_the_named_tensors()
    {
        string model = Shared.Fixture("models", "llama3-bpe");
        string dir = Shared.TempDir();
        try
        {
            string f32 = Path.Combine(dir, "f.gguf"), plain = Path.Combine(dir, "p.gguf"), weighted = Path.Combine(dir, "w.gguf"), dat = Path.Combine(dir, "i.dat");
            var r = CliRunner.Run("quantize", "-m", model, "-f", "f32", "-o", f32);
            Assert.True(r.ExitCode == 0, r.Stderr);
            r = CliRunner.Run("quantize", "-m", model, "-f", "q4_k", "-o", plain);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var rng = new Random(5);
            float[] Importance(int n) => Enumerable.Range(0, n).Select(_ => (float)Math.Exp(4 * rng.NextDouble() - 2)).ToArray();
            var named = new Dictionary<string, float[]> { ["blk.0.attn_q.weight"] = Importance(256), ["blk.1.ffn_down.weight"] = Importance(512) };
            ImportanceMatrix.Write(named.Select(kv => (kv.Key, kv.Value, 1L)).ToList(), dat, "t", 1, 1);
            r = CliRunner.Run("quantize", "-m", model, "-f", "q4_k", "--imatrix", dat, "-o", weighted);
            Assert.True(r.ExitCode == 0, r.Stderr);

            var q4k = AnyBit.Formats.FormatTable.ByName("Q4_K")!;
            using var source = GgufFile.Open(f32);
            using var p = GgufFile.Open(plain);
            using var w = GgufFile.Open(weighted);
            int quantized = 0;
            foreach (var t in w.Tensors)
            {
                var unweighted = p.Find(t.Name)!;
                if (named.TryGetValue(t.Name, out var importance))
                {
                    var expected = new byte[t.ByteLength];
                    q4k.Quantize(source.Find(t.Name)!.ToFloat32(), (int)t.RowLength, expected, importance);
                    Assert.True(t.Bytes.SequenceEqual(expected), $"{t.Name}: not the weighted Q4_K bytes");
                    Assert.False(t.Bytes.SequenceEqual(unweighted.Bytes), $"{t.Name}: the importance changed nothing");
                }
                else Assert.True(t.Bytes.SequenceEqual(unweighted.Bytes), $"{t.Name}: differs from the unweighted file though the imatrix does not name it");
                if (t.Type == TensorType.Q4_K) quantized++;
            }
            Assert.True(quantized > 2);

            ImportanceMatrix.Write([("blk.0.attn_q.weight", new float[128], 1L)], dat, "t", 1, 1);
            r = CliRunner.Run("quantize", "-m", model, "-f", "q4_k", "--imatrix", dat, "-o", weighted);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("importance matrix has 128 values for blk.0.attn_q.weight", r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static string Write(string path, byte[] content)
    {
        File.WriteAllBytes(path, content);
        return path;
    }

    private static void AssertIdentical(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in expected)
            Assert.True(values.Select(BitConverter.SingleToInt32Bits).SequenceEqual(actual[name].Select(BitConverter.SingleToInt32Bits)), $"{name} differs");
    }
}
