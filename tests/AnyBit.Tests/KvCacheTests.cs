using AnyBit.Inference;
using AnyBit.Kernels;
using AnyBit.Kernels.Attention;
using AnyBit.Models;
using AnyBit.Quantization;

namespace AnyBit.Tests;

/// <summary>
/// The KV cache at any bit width: cache types stored by their format's reference quantizer and read back by its
/// reference dequantizer, attention on the compressed cache against its scalar reference, the rotation exact in
/// float, sessions with a quantized cache close to float32, and one-line errors.
/// </summary>
public unsafe class KvCacheTests
{
    public static TheoryData<string> CacheTypes => new(KvCacheType.Examples);

    private static float[] RandomRows(Random rng, int count, int headDim)
    {
        var x = new float[count * headDim];
        for (int i = 0; i < x.Length; i++)
            // A steady per-channel offset and an outlier channel, as keys have, so :tokens and :min matter.
            x[i] = (float)((rng.NextDouble() * 2 - 1) + (i % headDim == 3 ? 6 : 0) + 0.5 * Math.Sin(i % headDim));
        return x;
    }

    /// <summary>
    /// Rows written to a cache come back, once quantized, as the format's own QuantizeRow → Dequantize of the
    /// (rotated) row — or of the channel's token block for :tokens — and unchanged while they are in the window.
    /// </summary>
    [Theory]
    [MemberData(nameof(CacheTypes))]
    public void Every_cache_type_round_trips_through_its_format(string spec)
    {
        int hd = 64, positions = 77, window = 9;
        foreach (int w in new[] { 0, window })
        {
            var type = KvCacheType.Parse(spec);
            var config = TinyConfig(hd, layers: 2, heads: 4, kvHeads: 2);
            using var cache = new KvCache(new KvCacheOptions { Key = type, Value = type, Window = w }, config, positions);
            var rng = new Random(spec.GetHashCode(StringComparison.Ordinal) & 0xffff);
            var keys = RandomRows(rng, positions, hd);
            var rotated = (float[])keys.Clone();
            // Chunks of 16 positions, both KV heads side by side in each row as the forward pass holds them.
            var chunkK = new float[16 * 2 * hd];
            var chunkV = new float[16 * 2 * hd];
            for (int start = 0; start < positions; start += 16)
            {
                int n = Math.Min(16, positions - start);
                for (int j = start; j < start + n; j++)
                {
                    var k = chunkK.AsSpan(((j - start) * 2 + 1) * hd, hd);
                    keys.AsSpan(j * hd, hd).CopyTo(k);
                    k.CopyTo(chunkV.AsSpan(((j - start) * 2 + 1) * hd, hd));
                    cache.Write(1, 1, j, k, chunkV.AsSpan(((j - start) * 2 + 1) * hd, hd));
                    k.CopyTo(rotated.AsSpan(j * hd, hd)); // Write rotates in place: what was stored
                }
                fixed (float* pk = chunkK, pv = chunkV) cache.BeginChunk(1, start, n, pk, pv, 2 * hd);
                cache.EndChunk(1);
            }
            int boundary = cache.Keys.QuantizedBefore(positions);
            Assert.Equal(type.IsFloat32 ? 0 : type.AlongTokens ? (positions - w) / type.TokenBlock * type.TokenBlock : positions - w, boundary);
            var expected = Expected(type, rotated, positions, hd, boundary);
            var row = new float[hd];
            var block = new float[hd * type.TokenBlock];
            fixed (float* pr = row, pb = block)
                for (int j = 0; j < positions; j++)
                {
                    float* got = cache.Keys.Fill(1, 1, j, 1, boundary, pr, pb);
                    for (int i = 0; i < hd; i++)
                        Assert.True(got[i] == expected[j * hd + i], $"{spec} window {w} position {j} channel {i}: {got[i]} vs {expected[j * hd + i]}");
                }
            if (type.Rotated) Assert.NotEqual(keys, rotated);
        }
    }

    /// <summary>What a cache of <paramref name="type"/> reads: format round trip below the boundary, the row itself above.</summary>
    private static float[] Expected(KvCacheType type, float[] rows, int positions, int hd, int boundary)
    {
        var expected = (float[])rows.Clone();
        var format = type.RowFormat(hd);
        if (!type.AlongTokens)
        {
            var bytes = new byte[format.ByteSize(hd)];
            for (int j = 0; j < boundary; j++)
            {
                format.QuantizeRow(rows.AsSpan(j * hd, hd), bytes);
                format.Dequantize(bytes, expected.AsSpan(j * hd, hd));
            }
            return expected;
        }
        int g = type.TokenBlock;
        var channel = new float[g];
        var back = new float[g];
        var blockBytes = new byte[format.ByteSize(g)];
        for (int b = 0; b < boundary / g; b++)
            for (int c = 0; c < hd; c++)
            {
                for (int i = 0; i < g; i++) channel[i] = rows[(b * g + i) * hd + c];
                format.QuantizeRow(channel, blockBytes);
                format.Dequantize(blockBytes, back);
                for (int i = 0; i < g; i++) expected[(b * g + i) * hd + c] = back[i];
            }
        return expected;
    }

    private static ModelConfig TinyConfig(int headDim, int layers, int heads, int kvHeads) => new()
    {
        Architecture = Architecture.Llama,
        HiddenSize = heads * headDim, IntermediateSize = 4 * headDim, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = headDim, VocabSize = 16, MaxPositions = 4096, RmsNormEps = 1e-5f,
    };

    public static TheoryData<string, string, int, int, int, bool, bool> AttentionCases => new()
    {
        // key type, value type, head dim, cache window, sliding window, sink, soft-cap
        { "q8_0", "q4_0", 64, 0, 0, false, false },
        { "q4_0:rot", "q4_0:rot", 64, 0, 0, true, false },
        { "int2:g32:min:tokens", "int2:g32:min", 64, 40, 0, false, false },
        { "int4:g16:min:tokens:rot", "q8_0:rot", 128, 7, 0, false, true },
        { "f16", "bf16", 80, 0, 50, true, true },
        { "int4:g16:min", "int3:g16:min:tokens", 80, 25, 33, false, false },
        { "f32:rot", "f32", 12, 0, 0, true, true },
        { "f32", "int8:g32:sym", 64, 3, 0, false, false },
    };

    /// <summary>
    /// The tiled kernel (blocks of rows sharing decoded tiles, two forms of a position within a chunk, split-K when
    /// few items) against the scalar reference (every position materialized in the form its query reads, double sums)
    /// on ragged chunks, a decode tail long enough to split, and a second sequence batched with the first. The
    /// tolerance is float32 accumulation in another order than the reference's double sums.
    /// </summary>
    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void Compressed_attention_equals_its_scalar_reference(string keyType, string valueType, int hd, int cacheWindow, int slidingWindow, bool sinks, bool softCap)
    {
        int heads = 4, kvHeads = 2, context = 700, maxBatch = 48, layer = 1;
        var config = TinyConfig(hd, layers: 2, heads, kvHeads);
        var options = new KvCacheOptions { Key = KvCacheType.Parse(keyType), Value = KvCacheType.Parse(valueType), Window = cacheWindow };
        using var a = new KvCache(options, config, context);
        using var b = new KvCache(options, config, context);
        using var pool = new WorkerPool(3);
        int blockScratch = Math.Max(a.Keys.BlockScratchLength, a.Values.BlockScratchLength);
        using var attention = new KvAttention(heads, kvHeads, hd, maxBatch, pool.WorkerCount, KvAttention.TileFor(options), blockScratch);
        var rng = new Random(hd * 31 + cacheWindow);
        float scale = 1f / MathF.Sqrt(hd), cap = softCap ? 5f : 0f;
        var sinkLogits = Enumerable.Range(0, heads).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        int[] chunks = [37, 1, 1, 48, 5, 33, 1, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 1, 1, 1];
        int position = 0, positionB = 0;
        var q = new float[maxBatch * heads * hd];
        var k = new float[maxBatch * kvHeads * hd]; // (row, kv head, head dim), as the forward pass holds them
        var v = new float[maxBatch * kvHeads * hd];
        var output = new float[maxBatch * heads * hd];
        var expected = new float[hd];
        var caches = new KvCache[maxBatch];
        var positions = new int[maxBatch];
        fixed (float* pq = q, po = output, pe = expected, ps = sinkLogits, pk = k, pv = v)
            foreach (int n in chunks.Where(c => c > 0))
            {
                // The last steps batch one row of a second sequence with the first, as continuous batching does.
                bool batched = n == 1 && position > 600;
                int rows = batched ? 2 : n;
                for (int r = 0; r < rows; r++)
                {
                    var cache = batched && r == 1 ? b : a;
                    int pos = batched && r == 1 ? positionB++ : position++;
                    caches[r] = cache; positions[r] = pos;
                    RandomRows(rng, kvHeads, hd).CopyTo(k, r * kvHeads * hd);
                    RandomRows(rng, kvHeads, hd).CopyTo(v, r * kvHeads * hd);
                    for (int h = 0; h < kvHeads; h++)
                        cache.Write(layer, h, pos, k.AsSpan((r * kvHeads + h) * hd, hd), v.AsSpan((r * kvHeads + h) * hd, hd));
                    for (int h = 0; h < heads; h++)
                    {
                        var head = q.AsSpan((r * heads + h) * hd, hd);
                        for (int i = 0; i < hd; i++) head[i] = (float)(rng.NextDouble() * 2 - 1);
                        cache.PrepareQuery(layer, h / (heads / kvHeads), head);
                    }
                }
                for (int r0 = 0, r = 0; r < rows; r++)
                    if (r + 1 == rows || caches[r + 1] != caches[r])
                    {
                        caches[r].BeginChunk(layer, positions[r0], r + 1 - r0, pk + r0 * kvHeads * hd, pv + r0 * kvHeads * hd, kvHeads * hd);
                        r0 = r + 1;
                    }
                attention.Run(pool, layer, rows, pq, po, caches.AsSpan(0, rows), positions.AsSpan(0, rows), scale, cap, sinks ? ps : null, slidingWindow);
                for (int r = 0; r < rows; r++)
                    for (int h = 0; h < heads; h++)
                    {
                        KvAttention.Reference(caches[r], layer, h / (heads / kvHeads), positions[r], pq + (r * heads + h) * hd, scale, cap,
                            sinks ? sinkLogits[h] : float.NegativeInfinity, slidingWindow, pe);
                        for (int i = 0; i < hd; i++)
                        {
                            float got = output[(r * heads + h) * hd + i];
                            Assert.True(MathF.Abs(got - expected[i]) <= 2e-5f + 2e-5f * MathF.Abs(expected[i]),
                                $"row {r} at {positions[r]} head {h} dim {i}: {got} vs {expected[i]}");
                        }
                    }
                for (int r = 0; r < rows; r++)
                    if (r + 1 == rows || caches[r + 1] != caches[r]) caches[r].EndChunk(layer);
            }
    }

    private static string GutenbergLlama => Shared.Data("models", "gutenberg-llama");

    private static int[] SherlockIds(Transformer model, int count) =>
        Evaluation.Perplexity.TokenizeForEvaluation(model.Tokenizer!, Shared.Data("text", "eval", "sherlock.txt"), count);

    private static float[] Logits(Transformer model, KvCacheOptions cache, int[] ids, int maxBatch = 64)
    {
        using var session = model.CreateSession(ids.Length, maxBatch, cache: cache);
        var all = new float[ids.Length * model.Config.VocabSize];
        session.Forward(ids, all);
        return all;
    }

    /// <summary>f32 + :rot on both sides differs from the plain float32 cache only by float rounding of the rotation.</summary>
    [Fact]
    public void Rotation_is_exact_in_float()
    {
        using var model = ModelLoader.Load(GutenbergLlama);
        var ids = SherlockIds(model, 200);
        var plain = Logits(model, KvCacheOptions.Default, ids);
        var rotated = Logits(model, KvCacheOptions.Parse("f32:rot", "f32:rot", 0), ids);
        float scale = plain.Max(MathF.Abs);
        double worst = 0;
        for (int i = 0; i < plain.Length; i++) worst = Math.Max(worst, Math.Abs(plain[i] - rotated[i]) / scale);
        Assert.True(worst < 1e-5, $"largest logit difference {worst:E2} of the largest logit");
    }

    /// <summary>A q8_0 cache stays close to float32 (llama.cpp's most common cache type).</summary>
    [Fact]
    public void Session_logits_with_a_q8_0_cache_are_close_to_float32()
    {
        using var model = ModelLoader.Load(GutenbergLlama);
        var ids = SherlockIds(model, 300);
        var plain = Logits(model, KvCacheOptions.Default, ids);
        var q8 = Logits(model, KvCacheOptions.Parse("q8_0", "q8_0", 0), ids);
        int vocab = model.Config.VocabSize;
        double kl = 0;
        int same = 0;
        for (int t = 0; t < ids.Length; t++)
        {
            var p = plain.AsSpan(t * vocab, vocab);
            var r = q8.AsSpan(t * vocab, vocab);
            kl += Kl(p, r);
            if (Sampler.ArgMax(p) == Sampler.ArgMax(r)) same++;
        }
        kl /= ids.Length;
        Assert.True(kl < 1e-3, $"mean KL {kl}");
        Assert.True(same >= ids.Length * 97 / 100, $"same top token {same}/{ids.Length}");
        Assert.NotEqual(plain, q8);
    }

    private static double Kl(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        double mp = p.ToArray().Max(), mq = q.ToArray().Max(), zp = 0, zq = 0;
        for (int i = 0; i < p.Length; i++) { zp += Math.Exp(p[i] - mp); zq += Math.Exp(q[i] - mq); }
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - mp - Math.Log(zp), lq = q[i] - mq - Math.Log(zq);
            kl += Math.Exp(lp) * (lp - lq);
        }
        return kl;
    }

    /// <summary>
    /// What a query reads depends on its position only: a prompt in one chunk, in ragged chunks, and token by token
    /// give the same logits (up to the order of float sums), with a window and token blocks filling across chunks.
    /// A rewind within the float rows the cache holds continues exactly as if the forgotten positions had never been
    /// written; one further back reads the window's positions from their quantized form, so it continues close.
    /// </summary>
    [Fact]
    public void Chunking_and_rewinding_do_not_change_what_queries_read()
    {
        using var model = ModelLoader.Load(GutenbergLlama);
        var ids = SherlockIds(model, 150);
        var cache = KvCacheOptions.Parse("int2:g16:min:tokens", "int4:g32:min:rot", 20);
        int vocab = model.Config.VocabSize;
        var whole = Logits(model, cache, ids, maxBatch: 150);
        using var session = model.CreateSession(ids.Length, maxBatch: 32, cache: cache);
        var stepwise = new float[ids.Length * vocab];
        int at = 0;
        foreach (int n in new[] { 40, 1, 1, 27, 32, 1, 48 })
        {
            session.Forward(ids.AsSpan(at, n), stepwise.AsSpan(at * vocab, n * vocab));
            at += n;
        }
        AssertClose(whole, stepwise, "ragged chunks");

        // Back to 149 (the positions read in float32 from there on are still held) and on again; then to 0.
        foreach (int back in new[] { 149, 0 })
        {
            session.Rewind(back);
            var again = new float[(ids.Length - back) * vocab];
            session.Forward(ids.AsSpan(back), again);
            AssertClose(whole.AsSpan(back * vocab).ToArray(), again, $"after a rewind to {back}");
        }
        // Back to 60: positions 36..59 left the float rows long ago and come back decoded.
        session.Rewind(60);
        var after = new float[(ids.Length - 60) * vocab];
        session.Forward(ids.AsSpan(60), after);
        int same = Enumerable.Range(0, ids.Length - 60).Count(t =>
            Sampler.ArgMax(after.AsSpan(t * vocab, vocab)) == Sampler.ArgMax(whole.AsSpan((60 + t) * vocab, vocab)));
        Assert.True(same >= (ids.Length - 60) * 8 / 10, $"same top token after a long rewind: {same} of {ids.Length - 60}");
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * scale, $"{what}: logit {i}: {actual[i]} vs {expected[i]}");
    }

    /// <summary>Continuous batching on compressed caches: one batched step gives each sequence what its own step would.</summary>
    [Fact]
    public void ForwardBatch_on_compressed_caches_equals_separate_forwards()
    {
        using var model = ModelLoader.Load(Shared.Fixture("models", "llama3-bpe"));
        var cache = KvCacheOptions.Parse("int4:g16:min:tokens:rot", "q8_0:rot", 3);
        int[][] prompts = [[1, 5, 9], [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40], [3, 7, 11, 13, 17]];
        var single = prompts.Select(_ => model.CreateSession(64, cache: cache)).ToArray();
        var batched = prompts.Select(_ => model.CreateSession(64, cache: cache)).ToArray();
        try
        {
            for (int i = 0; i < prompts.Length; i++) { single[i].Forward(prompts[i]); batched[i].Forward(prompts[i]); }
            for (int step = 0; step < 3; step++)
            {
                int[] next = [20 + step, 21 + step, 22 + step];
                InferenceSession.ForwardBatch(batched, next);
                for (int i = 0; i < prompts.Length; i++)
                {
                    var expected = single[i].Forward([next[i]]).ToArray();
                    AssertClose(expected, batched[i].LastLogits.ToArray(), $"sequence {i} step {step}");
                }
            }
        }
        finally
        {
            foreach (var s in single.Concat(batched)) s.Dispose();
        }
    }

    [Theory]
    [InlineData("q4_z", "cache type 'q4_z'")]
    [InlineData("q4_k", "not a multiple")]
    [InlineData("int4:channel:tokens", "needs a group size")]
    [InlineData("iq2_xxs", "importance matrix")]
    [InlineData("int8:tensor", "one scale per tensor")]
    [InlineData("q4_0:rot:rot", "given twice")]
    public void Bad_cache_types_are_one_line_errors(string spec, string message)
    {
        var e = Assert.ThrowsAny<AnyBitException>(() => new KvCacheOptions { Key = KvCacheType.Parse(spec) }.Validate(TinyConfig(64, 1, 2, 1), 128));
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void The_cli_refuses_an_unknown_type_a_window_beyond_the_context_and_a_prompt_beyond_it_in_one_line()
    {
        string[] common = ["run", "-m", GutenbergLlama, "--temperature", "0", "-n", "4"];
        var unknown = CliRunner.Run([.. common, "--prompt", "It was", "-ctk", "q9_9"]);
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("cache type 'q9_9'", unknown.Stderr);
        Assert.Single(unknown.Stderr.Trim().Split('\n'));

        var window = CliRunner.Run([.. common, "--prompt", "It was", "--ctx", "64", "-ctv", "q4_0", "--cache-window", "100"]);
        Assert.NotEqual(0, window.ExitCode);
        Assert.Contains("cache window 100 is larger than the context of 64", window.Stderr);
        Assert.Single(window.Stderr.Trim().Split('\n'));

        var prompt = CliRunner.Run([.. common, "--prompt", string.Concat(Enumerable.Repeat("It was a dark night. ", 20)), "--ctx", "16", "-ctk", "q8_0"]);
        Assert.NotEqual(0, prompt.ExitCode);
        Assert.Contains("the context holds 16", prompt.Stderr);
        Assert.Single(prompt.Stderr.Trim().Split('\n'));

        var ok = CliRunner.Run([.. common, "--prompt", "It was", "-ctk", "q8_0", "-ctv", "q4_0:rot", "--cache-window", "8"]);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
    }

    [Fact]
    public void Memory_per_position_and_per_sequence_follow_the_formats()
    {
        var c = TinyConfig(64, layers: 8, heads: 8, kvHeads: 4);
        var q40 = KvCacheOptions.Parse("q4_0", "q4_0", 0).Memory(c, 1024);
        Assert.Equal(8 * 4 * 2 * 36.0, q40.BytesPerPosition); // two q4_0 blocks of 18 bytes per head and side
        Assert.Equal(8L * 4 * 2 * 36 * 1024, q40.BytesPerSequence);
        Assert.Equal(0, q40.WindowBytes);
        var f32 = KvCacheOptions.Default.Memory(c, 1024);
        Assert.Equal(8 * 4 * 2 * 256.0, f32.BytesPerPosition);
        var kivi = KvCacheOptions.Parse("int2:g32:min:tokens", "int2:g32:min", 128).Memory(c, 1024);
        Assert.Equal(8 * 4 * (64 * 12 / 32.0 + 24), kivi.BytesPerPosition); // keys: a 12-byte block per channel per 32 positions; values: two 12-byte blocks per head
        Assert.Equal(8L * 4 * 64 * 4 * ((128 + 32) + (128 + 1)), kivi.WindowBytes); // the window and a token block still filling
    }
}
