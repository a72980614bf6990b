using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Tests.Experts;

/// <summary>
/// Tiny seeded Mixture-of-Experts GGUF files of each family, in llama.cpp's names and keys, with stories260K's
/// tokenizer (vocabulary 512), all weights float32. Random weights alone would score near the vocabulary size on
/// any text, hiding forward-pass differences; so hidden dimension 0 carries a unigram prior: every embedding row
/// has a large constant there, and the head's column 0 holds each token's log frequency in the text the model is
/// scored on, so perplexity lands well below the vocabulary and the layers' contributions move it.
/// </summary>
internal sealed record TinyMoe(string Arch, int Layers = 2, int Hidden = 64, int Heads = 4, int KvHeads = 2, int HeadDim = 16,
    int Experts = 4, int Used = 2, int ExpertFfn = 32, int SharedFfn = 0, bool Biases = false, bool QkNorm = false, int Seed = 1)
{
    /// <summary>A hostile file: the expert count written in place of the real one.</summary>
    public int? WrittenExpertCount { get; init; }
    /// <summary>A hostile file: extra rows in every expert's up projection.</summary>
    public int UpFfnDelta { get; init; }

    /// <summary>
    /// gpt-oss: Q/K/V/O biases, attention sinks, a sliding window of 8 on even layers, YaRN (factor 32 over an original
    /// context of 4096, base 150000, as gpt-oss-20b), router and expert biases, experts wide enough that the clamped
    /// SwiGLU's limit of 7 is reached; the FFN norm under llama.cpp's name for it, post_attention_norm.
    /// </summary>
    public static readonly TinyMoe GptOss = new("gpt-oss", Layers: 3, Experts: 6, Used: 3, Biases: true, Seed: 5);
    public const int GptOssWindow = 8;
    private bool IsGptOss => Arch == "gpt-oss";

    public static readonly TinyMoe Mixtral = new("llama");
    public static readonly TinyMoe Qwen2Moe = new("qwen2moe", SharedFfn: 48, Biases: true, Experts: 6, Seed: 2);
    public static readonly TinyMoe Qwen3Moe = new("qwen3moe", QkNorm: true, HeadDim: 24, Experts: 8, Used: 3, Seed: 3);
    public static readonly TinyMoe Olmoe = new("olmoe", QkNorm: true, KvHeads: 4, Experts: 8, Used: 2, Seed: 4); // OLMoE-1B-7B has no grouped keys, and llama.cpp sizes its k_norm so

    public static string Stories => Shared.Data("models", "stories260K", "stories260K.gguf");
    public static string Text => Shared.Data("text", "tinystories", "TinyStories-valid.sample.txt");

    /// <summary>Writes the model to <paramref name="path"/>, with a unigram prior from <paramref name="priorText"/>.</summary>
    public void Write(string path, string priorText)
    {
        using var stories = GgufFile.Open(Stories);
        int vocab = (int)stories.GetArray("tokenizer.ggml.tokens")!.Count;
        var prior = UnigramLogFrequencies(priorText, vocab);
        var random = new Random(Seed);
        float[] Normal(long n, float std)
        {
            var v = new float[n];
            for (long i = 0; i < n; i++)
            {
                double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                v[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }
            return v;
        }
        float[] Near1(long n) => Normal(n, 0.1f).Select(x => 1 + x).ToArray();

        var w = new GgufWriter();
        w.Add("general.architecture", Arch);
        w.Add("general.name", $"tiny-{Arch}");
        w.Add($"{Arch}.context_length", 512u);
        w.Add($"{Arch}.embedding_length", (uint)Hidden);
        w.Add($"{Arch}.block_count", (uint)Layers);
        w.Add($"{Arch}.feed_forward_length", (uint)ExpertFfn);
        w.Add($"{Arch}.attention.head_count", (uint)Heads);
        w.Add($"{Arch}.attention.head_count_kv", (uint)KvHeads);
        w.Add($"{Arch}.attention.key_length", (uint)HeadDim);
        w.Add($"{Arch}.attention.value_length", (uint)HeadDim);
        w.Add($"{Arch}.rope.dimension_count", (uint)HeadDim);
        w.Add($"{Arch}.rope.freq_base", IsGptOss ? 150000f : 10000f);
        if (IsGptOss)
        {
            w.Add($"{Arch}.rope.scaling.type", "yarn");
            w.Add($"{Arch}.rope.scaling.factor", 32f);
            w.Add($"{Arch}.rope.scaling.original_context_length", 4096u);
            w.Add($"{Arch}.attention.sliding_window", (uint)GptOssWindow);
        }
        w.Add($"{Arch}.attention.layer_norm_rms_epsilon", 1e-5f);
        w.Add($"{Arch}.expert_count", (uint)(WrittenExpertCount ?? Experts));
        w.Add($"{Arch}.expert_used_count", (uint)Used);
        if (Arch != "llama" && Arch != "olmoe") w.Add($"{Arch}.expert_feed_forward_length", (uint)ExpertFfn);
        if (SharedFfn > 0) w.Add($"{Arch}.expert_shared_feed_forward_length", (uint)SharedFfn);
        w.Add("general.file_type", 0u);
        foreach (string key in stories.MetadataKeys)
            if (key.StartsWith("tokenizer.", StringComparison.Ordinal)) w.AddRaw(key, stories.Metadata[key]);

        void Tensor(string name, long[] shape, float[] values) =>
            w.AddTensor(name, shape, (uint)TensorType.F32, values.Length * 4L, dst => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(dst));

        int q = Heads * HeadDim, kv = KvHeads * HeadDim, d = Hidden;
        var embd = Normal((long)vocab * d, 0.5f);
        for (int v = 0; v < vocab; v++) embd[(long)v * d] = 4f;
        Tensor("token_embd.weight", [vocab, d], embd);
        for (int l = 0; l < Layers; l++)
        {
            string b = $"blk.{l}.";
            Tensor(b + "attn_norm.weight", [d], Near1(d));
            Tensor(b + "attn_q.weight", [q, d], Normal((long)q * d, 0.15f));
            Tensor(b + "attn_k.weight", [kv, d], Normal((long)kv * d, 0.15f));
            Tensor(b + "attn_v.weight", [kv, d], Normal((long)kv * d, 0.15f));
            if (Biases)
            {
                Tensor(b + "attn_q.bias", [q], Normal(q, 0.1f));
                Tensor(b + "attn_k.bias", [kv], Normal(kv, 0.1f));
                Tensor(b + "attn_v.bias", [kv], Normal(kv, 0.1f));
            }
            if (QkNorm)
            {
                // OLMoE normalizes each whole projection, Qwen3-MoE each head.
                bool across = Arch == "olmoe";
                Tensor(b + "attn_q_norm.weight", [across ? q : HeadDim], Near1(across ? q : HeadDim));
                Tensor(b + "attn_k_norm.weight", [across ? kv : HeadDim], Near1(across ? kv : HeadDim));
            }
            var wo = Normal((long)d * q, 0.1f);
            for (int j = 0; j < q; j++) wo[j] = 0; // row 0 is the prior's dimension: layers leave it alone
            Tensor(b + "attn_output.weight", [d, q], wo);
            if (IsGptOss)
            {
                var bo = Normal(d, 0.1f);
                bo[0] = 0;
                Tensor(b + "attn_output.bias", [d], bo);
                Tensor(b + "attn_sinks.weight", [Heads], Normal(Heads, 1f));
            }
            Tensor(b + (IsGptOss ? "post_attention_norm.weight" : "ffn_norm.weight"), [d], Near1(d));
            Tensor(b + "ffn_gate_inp.weight", [Experts, d], Normal((long)Experts * d, 0.3f));
            if (IsGptOss) Tensor(b + "ffn_gate_inp.bias", [Experts], Normal(Experts, 0.3f));
            // gpt-oss's experts are wide enough to reach the clamped SwiGLU's limit.
            float std = IsGptOss ? 0.5f : 0.2f;
            Tensor(b + "ffn_gate_exps.weight", [Experts, ExpertFfn, d], Normal((long)Experts * ExpertFfn * d, std));
            Tensor(b + "ffn_up_exps.weight", [Experts, ExpertFfn + UpFfnDelta, d], Normal((long)Experts * (ExpertFfn + UpFfnDelta) * d, std));
            // (and their outputs scaled down, so that the unigram prior still shows through)
            var down = Normal((long)Experts * d * ExpertFfn, IsGptOss ? 0.03f : 0.2f);
            for (int e = 0; e < Experts; e++)
                for (int j = 0; j < ExpertFfn; j++) down[(long)e * d * ExpertFfn + j] = 0;
            Tensor(b + "ffn_down_exps.weight", [Experts, d, ExpertFfn], down);
            if (IsGptOss)
            {
                Tensor(b + "ffn_gate_exps.bias", [Experts, ExpertFfn], Normal((long)Experts * ExpertFfn, 0.5f));
                Tensor(b + "ffn_up_exps.bias", [Experts, ExpertFfn], Normal((long)Experts * ExpertFfn, 0.5f));
                var downBias = Normal((long)Experts * d, 0.05f);
                for (int e = 0; e < Experts; e++) downBias[(long)e * d] = 0;
                Tensor(b + "ffn_down_exps.bias", [Experts, d], downBias);
            }
            if (SharedFfn > 0)
            {
                Tensor(b + "ffn_gate_inp_shexp.weight", [d], Normal(d, 0.3f));
                Tensor(b + "ffn_gate_shexp.weight", [SharedFfn, d], Normal((long)SharedFfn * d, 0.2f));
                Tensor(b + "ffn_up_shexp.weight", [SharedFfn, d], Normal((long)SharedFfn * d, 0.2f));
                var sdown = Normal((long)d * SharedFfn, 0.2f);
                for (int j = 0; j < SharedFfn; j++) sdown[j] = 0;
                Tensor(b + "ffn_down_shexp.weight", [d, SharedFfn], sdown);
            }
        }
        Tensor("output_norm.weight", [d], Near1(d));
        var output = Normal((long)vocab * d, 0.05f);
        for (int v = 0; v < vocab; v++) output[(long)v * d] = prior[v] / 2f;
        Tensor("output.weight", [vocab, d], output);
        w.Write(path);
    }

    /// <summary>log((count + 1) / total) of each token id in the text, as stories260K's tokenizer splits it.</summary>
    private static float[] UnigramLogFrequencies(string text, int vocab)
    {
        using var model = ModelLoader.Load(Stories);
        var counts = new double[vocab];
        foreach (int id in model.Tokenizer!.Encode(text, addSpecial: false)) counts[id]++;
        double total = counts.Sum() + vocab;
        return counts.Select(c => (float)Math.Log((c + 1) / total)).ToArray();
    }
}
