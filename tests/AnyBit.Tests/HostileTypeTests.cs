using AnyBit.Formats;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// Hostile files holding the i-quant ids (16–23, 29) and bitnet.cpp's I2_S (36): truncated data, sizes that do not
/// add up, and blocks of arbitrary bytes. Every one opens and runs, or is refused with one line naming the file and the
/// problem; none crashes. The ids are tested whether or not they have a row yet (an id known only by its size is
/// refused when decoded); the block-decoding test iterates the format table, so every row that lands is covered.
/// </summary>
public class HostileTypeTests
{
    public static TheoryData<int> Ids => new() { 16, 17, 18, 19, 20, 21, 22, 23, 29, 36 };

    /// <summary>Id 36 is I2_S only in bitnet.cpp's BitNet files.</summary>
    private static string ArchitectureFor(int id) => id == 36 ? "bitnet-b1.58" : "llama";

    private static string Write(byte[] bytes)
    {
        string path = Path.Combine(Shared.TempDir(), "h.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void AssertRefused(byte[] file, string what)
    {
        string path = Write(file);
        var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.StartsWith(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(string.IsNullOrWhiteSpace(e.Message), what);
    }

    private static long Pad(long n) => (n + 31) / 32 * 32;

    [Theory]
    [MemberData(nameof(Ids))]
    public void Truncated_and_missized_tensors_are_refused_in_one_line(int id)
    {
        var traits = TensorTypes.Traits((TensorType)id);
        string arch = ArchitectureFor(id);
        ulong rowLength = 512;
        long bytes = TensorTypes.ByteSize((TensorType)id, 4 * 512);
        var data = new byte[bytes];
        new Random(id).NextBytes(data);

        // The file ends inside the tensor's data (for I2_S, also: the codes without their scale tail).
        var whole = new GgufBuilder().KvString("general.architecture", arch).Tensor("blk.0.attn_q.weight", [rowLength, 4], (uint)id, data).Build();
        AssertRefused(whole[..(whole.Length - (int)(Pad(bytes) - bytes) - (int)(bytes / 2))], "truncated");
        AssertRefused(whole[..(whole.Length - (int)(Pad(bytes) - bytes) - 1)], "one byte short");

        // A row that is not whole blocks.
        var partial = new GgufBuilder().KvString("general.architecture", arch).Tensor("t", [(ulong)traits.BlockSize / 2, 4], (uint)id, data);
        AssertRefused(partial.Build(), "row length");

        // A shape larger than the bytes stored for it: it runs into the next tensor.
        var overlapping = new GgufBuilder().KvString("general.architecture", arch)
            .Tensor("a", [rowLength, 16], (uint)id, data).Tensor("b", [rowLength, 4], (uint)id, data);
        AssertRefused(overlapping.Build(), "overlap");

        // A shape whose byte size overflows.
        var huge = new GgufBuilder().KvString("general.architecture", arch).Tensor("t", [rowLength, 1UL << 52], (uint)id, data);
        AssertRefused(huge.Build(), "huge");
    }

    /// <summary>Blocks of random bytes, all ones (NaN and infinite scales, the largest indices) and all zeros.</summary>
    private static IEnumerable<byte[]> HostileBlocks(long bytes, int seed)
    {
        var random = new byte[bytes];
        new Random(seed).NextBytes(random);
        yield return random;
        yield return Enumerable.Repeat((byte)0xFF, (int)bytes).ToArray();
        yield return new byte[bytes];
    }

    [Theory]
    [MemberData(nameof(Ids))]
    public void Arbitrary_block_bytes_decode_or_are_refused(int id)
    {
        foreach (var data in HostileBlocks(TensorTypes.ByteSize((TensorType)id, 4 * 512), id))
        {
            string path = Write(new GgufBuilder().KvString("general.architecture", ArchitectureFor(id)).Tensor("t", [512, 4], (uint)id, data).Build());
            using var g = GgufFile.Open(path);
            try
            {
                Assert.Equal(4 * 512, g.Tensors[0].ToFloat32().Length);
            }
            catch (AnyBitException e)
            {
                // An id AnyBit knows only by its size is refused by name when decoded.
                Assert.Null(FormatTable.ByType((TensorType)id));
                Assert.DoesNotContain('\n', e.Message);
            }
        }
    }

    /// <summary>A one-layer model (llama, or bitnet.cpp's BitNet for id 36) whose linear weights are arbitrary blocks of
    /// the type: loading and a forward pass, on the fast kernels and on float32, work or are refused in one line.</summary>
    [Theory]
    [MemberData(nameof(Ids))]
    public void A_model_of_arbitrary_blocks_runs_or_is_refused(int id)
    {
        const int d = 256, vocab = 16;
        string arch = ArchitectureFor(id);
        int seed = id;
        foreach (var pattern in new[] { 0, 1, 2 })
        {
            var b = new GgufBuilder().KvString("general.architecture", arch)
                .KvU32($"{arch}.embedding_length", d).KvU32($"{arch}.feed_forward_length", d).KvU32($"{arch}.block_count", 1)
                .KvU32($"{arch}.attention.head_count", 2).KvU32($"{arch}.attention.head_count_kv", 2).KvU32($"{arch}.context_length", 64);
            var rng = new Random(seed++);
            byte[] Floats(int n, Func<float> value) => Enumerable.Range(0, n).SelectMany(_ => BitConverter.GetBytes(value())).ToArray();
            byte[] Ones() => Floats(d, () => 1f);
            byte[] Linear() => HostileBlocks(TensorTypes.ByteSize((TensorType)id, (long)d * d), rng.Next()).ElementAt(pattern);
            b.Tensor("token_embd.weight", [d, vocab], 0, Floats(d * vocab, () => (float)(rng.NextDouble() - 0.5)));
            b.Tensor("blk.0.attn_norm.weight", [d], 0, Ones());
            foreach (string m in new[] { "attn_q", "attn_k", "attn_v", "attn_output" }) b.Tensor($"blk.0.{m}.weight", [d, d], (uint)id, Linear());
            if (arch != "llama") b.Tensor("blk.0.attn_sub_norm.weight", [d], 0, Ones());
            b.Tensor("blk.0.ffn_norm.weight", [d], 0, Ones());
            foreach (string m in new[] { "ffn_gate", "ffn_up", "ffn_down" }) b.Tensor($"blk.0.{m}.weight", [d, d], (uint)id, Linear());
            if (arch != "llama") b.Tensor("blk.0.ffn_sub_norm.weight", [d], 0, Ones());
            b.Tensor("output_norm.weight", [d], 0, Ones());
            string path = Write(b.Build());
            foreach (var kernels in new[] { KernelMode.Fast, KernelMode.Float32 })
            {
                try
                {
                    using var model = ModelLoader.Load(path, new LoadOptions { Kernels = kernels });
                    using var session = model.CreateSession(8);
                    Assert.Equal(vocab, session.Forward([1, 2, 3]).Length);
                }
                catch (AnyBitException e)
                {
                    Assert.Null(FormatTable.ByType((TensorType)id));
                    Assert.StartsWith(path, e.Message);
                    Assert.DoesNotContain('\n', e.Message);
                }
            }
        }
    }

    public static TheoryData<string> Rows => new(FormatTable.Ggml.Where(f => f.IsQuantized).Select(f => f.TypeName));

    /// <summary>
    /// Every quantized row of the format table decodes any bytes without reading outside its tables (the i-quants' grid
    /// and sign indices, the lookup tables): the float dequantizer and, for rows with a kernel, both kernel paths.
    /// </summary>
    [Theory]
    [MemberData(nameof(Rows))]
    public void Any_block_bytes_decode_inside_the_tables(string type)
    {
        var format = FormatTable.ByName(type)!;
        const int rows = 16, cols = 512;
        foreach (var bytes in HostileBlocks(format.ByteSize((long)rows * cols), type.Length))
        {
            var values = new float[rows * cols];
            format.Dequantize(bytes, values);
            if (format.Kind is null) continue;
            using var m = QuantizedKernelTests.Pack(type, rows, cols, bytes);
            var x = Enumerable.Range(0, 2 * cols).Select(i => (float)Math.Sin(i)).ToArray();
            var (fast, reference) = QuantizedKernelTests.FastAndReference(m, x, 2, 2);
            Assert.Equal(2 * rows, fast.Length);
            Assert.Equal(2 * rows, reference.Length);
        }
    }
}
