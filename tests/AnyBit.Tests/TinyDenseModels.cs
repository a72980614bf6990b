using System.Text.Json;
using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>
/// Tiny seeded random-weight Gemma 2, Gemma 3 and Phi-3 models, written as GGUF (llama.cpp's architecture names, keys
/// and tensor layout: norms stored as 1 + w for Gemma, Phi-3's fused attn_qkv and [2F, D] ffn_up, LongRoPE factor
/// tensors) and as Hugging Face folders (transformers' config keys and tensor names, Gemma norms as w), plus a float64
/// forward pass written from transformers' modeling_gemma2.py / modeling_gemma3.py / modeling_phi3.py, independent of
/// AnyBit's. Weights are held in the Hugging Face form. Hidden dimension 0 is reserved for a unigram prior over the
/// text's characters (the embedding's column 0 is 1, no layer writes it, the head reads it), so that perplexity on
/// the generated text is well below the vocabulary and forward-pass differences show.
/// </summary>
internal sealed class TinyDenseModel
{
    public const int D = 64, Heads = 4, KvHeads = 2, HeadDim = 16, F = 128, Vocab = 300;
    public const string Alphabet = "eaonisrhldcum";

    public required string Family { get; init; } // "gemma2", "gemma3", "phi3"
    public required int Layers { get; init; }
    public required int Window { get; init; }
    public float Eps => Family == "phi3" ? 1e-5f : 1e-6f;
    public bool Gemma => Family != "phi3";
    public float? AttnCap => Family == "gemma2" ? 5f : null;
    public float? FinalCap => Family == "gemma2" ? 15f : null;
    public double Theta => Family == "gemma3" ? 100000 : 10000;
    public double LinearFactor => Family == "gemma3" ? 2 : 1;
    public const int PhiMaxPositions = 16384, PhiOriginal = 4096;
    public static double PhiAttentionFactor => Math.Sqrt(1 + Math.Log((double)PhiMaxPositions / PhiOriginal) / Math.Log(PhiOriginal));

    // Hugging Face form: [out, in] row-major.
    public float[] Embed = [], Head = [], FinalNorm = [], ShortFactors = [], LongFactors = [];
    public float[][] InNorm = [], Q = [], K = [], V = [], O = [], QNorm = [], KNorm = [], PostAttnNorm = [], FfnNorm = [], PostFfnNorm = [], Gate = [], Up = [], Down = [];

    public static TinyDenseModel Create(string family)
    {
        var m = new TinyDenseModel { Family = family, Layers = family switch { "gemma2" => 26, "gemma3" => 6, _ => 2 }, Window = family == "phi3" ? 16 : 8 };
        var rng = new Random(family.Aggregate(17, (h, ch) => h * 31 + ch));
        float[] Normal(int n, double sigma) => Enumerable.Range(0, n).Select(_ => (float)(sigma * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()))).ToArray();
        float[] Norm(int n) => m.Gemma ? Normal(n, 0.2) : Normal(n, 0.2).Select(x => 1 + x).ToArray();
        float[] Writer(int rows, int cols, double sigma)
        {
            var w = Normal(rows * cols, sigma);
            Array.Clear(w, 0, cols); // row 0 writes the reserved dimension: zero
            return w;
        }
        double s = 1 / Math.Sqrt(D);
        m.Embed = Normal(Vocab * D, 0.15);
        var prior = UnigramLogPrior();
        // Gemma ties the head to the embedding, so there column 0 carries the prior itself (kept positive).
        for (int v = 0; v < Vocab; v++) m.Embed[v * D] = m.Gemma ? (float)(1 + prior[v] / 12) : 1f;
        m.Head = Normal(Vocab * D, 0.08);
        for (int v = 0; v < Vocab; v++) m.Head[v * D] = (float)(prior[v] / 8);
        int L = m.Layers;
        m.InNorm = Enumerable.Range(0, L).Select(_ => Norm(D)).ToArray();
        m.Q = Enumerable.Range(0, L).Select(_ => Normal(Heads * HeadDim * D, 2.5 * s)).ToArray();
        m.K = Enumerable.Range(0, L).Select(_ => Normal(KvHeads * HeadDim * D, 2.5 * s)).ToArray();
        m.V = Enumerable.Range(0, L).Select(_ => Normal(KvHeads * HeadDim * D, s)).ToArray();
        m.O = Enumerable.Range(0, L).Select(_ => Writer(D, Heads * HeadDim, 0.5 / Math.Sqrt(Heads * HeadDim))).ToArray();
        m.QNorm = Enumerable.Range(0, L).Select(_ => Norm(HeadDim)).ToArray();
        m.KNorm = Enumerable.Range(0, L).Select(_ => Norm(HeadDim)).ToArray();
        // Post-norms of about 0.3, so that 26 layers do not drown the reserved dimension.
        m.PostAttnNorm = Enumerable.Range(0, L).Select(_ => Norm(D).Select(x => x - 0.7f).ToArray()).ToArray();
        m.FfnNorm = Enumerable.Range(0, L).Select(_ => Norm(D)).ToArray();
        m.PostFfnNorm = Enumerable.Range(0, L).Select(_ => Norm(D).Select(x => x - 0.7f).ToArray()).ToArray();
        m.Gate = Enumerable.Range(0, L).Select(_ => Normal(F * D, 1.5 * s)).ToArray();
        m.Up = Enumerable.Range(0, L).Select(_ => Normal(F * D, 1.5 * s)).ToArray();
        m.Down = Enumerable.Range(0, L).Select(_ => Writer(D, F, 0.5 / Math.Sqrt(F))).ToArray();
        m.FinalNorm = Norm(D);
        m.FinalNorm[0] = m.Gemma ? 3f : 4f; // the final norm carries the reserved dimension with a scale of 4
        m.ShortFactors = Enumerable.Range(0, HeadDim / 2).Select(_ => (float)(1 + 2 * rng.NextDouble())).ToArray();
        m.LongFactors = Enumerable.Range(0, HeadDim / 2).Select(_ => (float)(1 + 8 * rng.NextDouble())).ToArray();
        return m;
    }

    /// <summary>The token id of a text character in the tiny vocabulary: "▁" for a space, else its byte token.</summary>
    public static int TokenOf(char ch) => ch == ' ' ? 259 : 3 + ch;

    private static double[] CharWeights() => Enumerable.Range(0, Alphabet.Length + 1).Select(i => 1.0 / (i + 1.5)).ToArray();

    /// <summary>Log-probabilities of the text's characters (the space most likely), a floor for every other token.</summary>
    private static double[] UnigramLogPrior()
    {
        var weights = CharWeights();
        double total = weights.Sum();
        var prior = Enumerable.Repeat(Math.Log(1e-4), Vocab).ToArray();
        prior[TokenOf(' ')] = Math.Log(weights[0] / total);
        for (int i = 0; i < Alphabet.Length; i++) prior[TokenOf(Alphabet[i])] = Math.Log(weights[i + 1] / total);
        return prior;
    }

    /// <summary>The evaluation text: seeded characters of the prior's distribution (no newline, no leading space).</summary>
    public static string Text(int length = 1400)
    {
        var rng = new Random(2024);
        var weights = CharWeights();
        double total = weights.Sum();
        var chars = new char[length];
        for (int i = 0; i < length; i++)
        {
            double u = rng.NextDouble() * total;
            int k = 0;
            while (k < weights.Length - 1 && (u -= weights[k]) > 0) k++;
            chars[i] = k == 0 ? ' ' : Alphabet[k - 1];
        }
        chars[0] = 'e';
        chars[^1] = 'e';
        return new string(chars).Replace("  ", " e");
    }

    // ---- GGUF, as convert_hf_to_gguf.py writes these families ----

    public void WriteGguf(string path)
    {
        var w = new GgufWriter();
        string a = Family;
        w.Add("general.architecture", a);
        w.Add("general.name", "tiny seeded model"); // not "phi3": llama.cpp then expects Phi-3's <|endoftext|> token
        w.Add($"{a}.context_length", (uint)(Family == "phi3" ? PhiMaxPositions : 256));
        w.Add($"{a}.embedding_length", (uint)D);
        w.Add($"{a}.block_count", (uint)Layers);
        w.Add($"{a}.feed_forward_length", (uint)F);
        w.Add($"{a}.attention.head_count", (uint)Heads);
        w.Add($"{a}.attention.head_count_kv", (uint)KvHeads);
        w.Add($"{a}.attention.layer_norm_rms_epsilon", Eps);
        w.Add($"{a}.rope.freq_base", (float)Theta);
        w.Add($"{a}.attention.sliding_window", (uint)Window);
        if (Gemma)
        {
            w.Add($"{a}.attention.key_length", (uint)HeadDim);
            w.Add($"{a}.attention.value_length", (uint)HeadDim);
        }
        if (AttnCap is float ac) w.Add($"{a}.attn_logit_softcapping", ac);
        if (FinalCap is float fc) w.Add($"{a}.final_logit_softcapping", fc);
        if (LinearFactor != 1)
        {
            w.Add($"{a}.rope.scaling.type", "linear");
            w.Add($"{a}.rope.scaling.factor", (float)LinearFactor);
        }
        if (Family == "phi3")
        {
            w.Add($"{a}.rope.dimension_count", (uint)HeadDim);
            w.Add($"{a}.rope.scaling.original_context_length", (uint)PhiOriginal);
            w.Add($"{a}.rope.scaling.attn_factor", (float)PhiAttentionFactor);
        }
        // synth's SentencePiece vocabulary, with these files' own filler pieces ("▁zz{i}") and no space prefix.
        AnyBit.Quantization.SyntheticModel.WriteVocabulary(w, Vocab, filler: "▁zz", addSpacePrefix: false);
        void T(string name, long[] shape, float[] values) =>
            w.AddTensor(name, shape, 0, values.Length * 4L, dst => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(dst));
        float[] N(float[] norm) => Gemma ? norm.Select(x => 1f + x).ToArray() : norm;
        if (Family == "phi3")
        {
            T("rope_factors_long.weight", [HeadDim / 2], LongFactors);
            T("rope_factors_short.weight", [HeadDim / 2], ShortFactors);
        }
        T("token_embd.weight", [Vocab, D], Embed);
        for (int l = 0; l < Layers; l++)
        {
            string b = $"blk.{l}.";
            T(b + "attn_norm.weight", [D], N(InNorm[l]));
            if (Family == "phi3") T(b + "attn_qkv.weight", [(Heads + 2 * KvHeads) * HeadDim, D], [.. Q[l], .. K[l], .. V[l]]);
            else
            {
                T(b + "attn_q.weight", [Heads * HeadDim, D], Q[l]);
                T(b + "attn_k.weight", [KvHeads * HeadDim, D], K[l]);
                T(b + "attn_v.weight", [KvHeads * HeadDim, D], V[l]);
            }
            T(b + "attn_output.weight", [D, Heads * HeadDim], O[l]);
            if (Family == "gemma3")
            {
                T(b + "attn_q_norm.weight", [HeadDim], N(QNorm[l]));
                T(b + "attn_k_norm.weight", [HeadDim], N(KNorm[l]));
            }
            if (Gemma) T(b + "post_attention_norm.weight", [D], N(PostAttnNorm[l]));
            T(b + "ffn_norm.weight", [D], N(FfnNorm[l]));
            if (Family == "phi3") T(b + "ffn_up.weight", [2 * F, D], [.. Gate[l], .. Up[l]]);
            else
            {
                T(b + "ffn_gate.weight", [F, D], Gate[l]);
                T(b + "ffn_up.weight", [F, D], Up[l]);
            }
            T(b + "ffn_down.weight", [D, F], Down[l]);
            if (Gemma) T(b + "post_ffw_norm.weight", [D], N(PostFfnNorm[l]));
        }
        T("output_norm.weight", [D], N(FinalNorm));
        if (!Gemma) T("output.weight", [Vocab, D], Head);
        w.Write(path);
    }


    // ---- Hugging Face folder, as transformers names it ----

    public void WriteHfFolder(string folder)
    {
        Directory.CreateDirectory(folder);
        var config = new Dictionary<string, object?>
        {
            ["model_type"] = Family == "gemma3" ? "gemma3_text" : Family,
            ["hidden_size"] = D, ["intermediate_size"] = F, ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads, ["vocab_size"] = Vocab,
            ["rms_norm_eps"] = Eps, ["rope_theta"] = Theta, ["sliding_window"] = Window,
            ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["tie_word_embeddings"] = Gemma,
        };
        if (Gemma)
        {
            config["head_dim"] = HeadDim;
            config["hidden_activation"] = "gelu_pytorch_tanh";
            config["query_pre_attn_scalar"] = HeadDim;
            config["max_position_embeddings"] = 256;
            config["attn_logit_softcapping"] = AttnCap;
            config["final_logit_softcapping"] = FinalCap;
        }
        if (Family == "gemma3")
        {
            config["rope_local_base_freq"] = 10000.0;
            config["sliding_window_pattern"] = 6;
            config["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = LinearFactor };
        }
        if (Family == "phi3")
        {
            config["hidden_act"] = "silu";
            config["max_position_embeddings"] = PhiMaxPositions;
            config["original_max_position_embeddings"] = PhiOriginal;
            config["rope_scaling"] = new Dictionary<string, object> { ["type"] = "longrope", ["short_factor"] = ShortFactors, ["long_factor"] = LongFactors };
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
        var st = new SafetensorsWriter();
        st.Add("model.embed_tokens.weight", [Vocab, D], Embed);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            st.Add(p + "input_layernorm.weight", [D], InNorm[l]);
            if (Family == "phi3")
            {
                st.Add(p + "self_attn.qkv_proj.weight", [(Heads + 2 * KvHeads) * HeadDim, D], [.. Q[l], .. K[l], .. V[l]]);
                st.Add(p + "mlp.gate_up_proj.weight", [2 * F, D], [.. Gate[l], .. Up[l]]);
                st.Add(p + "post_attention_layernorm.weight", [D], FfnNorm[l]);
            }
            else
            {
                st.Add(p + "self_attn.q_proj.weight", [Heads * HeadDim, D], Q[l]);
                st.Add(p + "self_attn.k_proj.weight", [KvHeads * HeadDim, D], K[l]);
                st.Add(p + "self_attn.v_proj.weight", [KvHeads * HeadDim, D], V[l]);
                st.Add(p + "mlp.gate_proj.weight", [F, D], Gate[l]);
                st.Add(p + "mlp.up_proj.weight", [F, D], Up[l]);
                st.Add(p + "post_attention_layernorm.weight", [D], PostAttnNorm[l]);
                st.Add(p + "pre_feedforward_layernorm.weight", [D], FfnNorm[l]);
                st.Add(p + "post_feedforward_layernorm.weight", [D], PostFfnNorm[l]);
            }
            if (Family == "gemma3")
            {
                st.Add(p + "self_attn.q_norm.weight", [HeadDim], QNorm[l]);
                st.Add(p + "self_attn.k_norm.weight", [HeadDim], KNorm[l]);
            }
            st.Add(p + "self_attn.o_proj.weight", [D, Heads * HeadDim], O[l]);
            st.Add(p + "mlp.down_proj.weight", [D, F], Down[l]);
        }
        st.Add("model.norm.weight", [D], FinalNorm);
        if (!Gemma) st.Add("lm_head.weight", [Vocab, D], Head);
        st.Write(Path.Combine(folder, "model.safetensors"));
    }

    // ---- float64 reference forward (transformers' definitions) ----

    /// <summary>Logits [tokens, vocab] of <paramref name="ids"/> from position 0, in float64.</summary>
    public double[][] ReferenceLogits(int[] ids)
    {
        int n = ids.Length, qw = Heads * HeadDim, kvw = KvHeads * HeadDim;
        double[] RmsNorm(ReadOnlySpan<double> x, float[] w)
        {
            double ms = 0;
            foreach (double v in x) ms += v * v;
            double inv = 1 / Math.Sqrt(ms / x.Length + Eps);
            var y = new double[x.Length];
            for (int i = 0; i < x.Length; i++) y[i] = x[i] * inv * (Gemma ? 1.0 + w[i] : w[i]);
            return y;
        }
        double[] MatVec(float[] w, double[] x, int rows)
        {
            int cols = x.Length;
            var y = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += w[r * cols + c] * x[c];
                y[r] = sum;
            }
            return y;
        }
        void Rope(double[] v, int offset, int pos, bool local)
        {
            // rotate_half over the head (NEOX order): pairs (i, i + d/2).
            int half = HeadDim / 2;
            for (int i = 0; i < half; i++)
            {
                double theta = local ? 10000 : Theta;
                double inv = 1 / Math.Pow(theta, 2.0 * i / HeadDim);
                double p = pos, scale = 1;
                if (!local && LinearFactor != 1) p /= LinearFactor;
                if (Family == "phi3") { inv /= ShortFactors[i]; scale = PhiAttentionFactor; }
                double angle = p * inv, cos = Math.Cos(angle) * scale, sin = Math.Sin(angle) * scale;
                double a = v[offset + i], b = v[offset + i + half];
                v[offset + i] = a * cos - b * sin;
                v[offset + i + half] = b * cos + a * sin;
            }
        }
        var x = new double[n][];
        for (int t = 0; t < n; t++)
        {
            x[t] = new double[D];
            double scale = Gemma ? MathF.Sqrt(D) : 1;
            for (int i = 0; i < D; i++) x[t][i] = Embed[ids[t] * D + i] * scale;
        }
        for (int l = 0; l < Layers; l++)
        {
            bool sliding = Family switch { "gemma2" => l % 2 == 0, "gemma3" => (l + 1) % 6 != 0, _ => true };
            var q = new double[n][]; var k = new double[n][]; var v = new double[n][];
            for (int t = 0; t < n; t++)
            {
                var h = RmsNorm(x[t], InNorm[l]);
                q[t] = MatVec(Q[l], h, qw); k[t] = MatVec(K[l], h, kvw); v[t] = MatVec(V[l], h, kvw);
                for (int hh = 0; hh < Heads; hh++)
                {
                    if (Family == "gemma3") RmsNorm(q[t].AsSpan(hh * HeadDim, HeadDim), QNorm[l]).CopyTo(q[t], hh * HeadDim);
                    Rope(q[t], hh * HeadDim, t, Family == "gemma3" && sliding);
                }
                for (int hh = 0; hh < KvHeads; hh++)
                {
                    if (Family == "gemma3") RmsNorm(k[t].AsSpan(hh * HeadDim, HeadDim), KNorm[l]).CopyTo(k[t], hh * HeadDim);
                    Rope(k[t], hh * HeadDim, t, Family == "gemma3" && sliding);
                }
            }
            double scaling = 1 / Math.Sqrt(HeadDim); // query_pre_attn_scalar = head_dim here
            for (int t = 0; t < n; t++)
            {
                var att = new double[qw];
                for (int hh = 0; hh < Heads; hh++)
                {
                    int kvh = hh / (Heads / KvHeads);
                    int lo = sliding ? Math.Max(0, t - Window + 1) : 0;
                    var scores = new double[t - lo + 1];
                    for (int j = lo; j <= t; j++)
                    {
                        double dot = 0;
                        for (int i = 0; i < HeadDim; i++) dot += q[t][hh * HeadDim + i] * k[j][kvh * HeadDim + i];
                        dot *= scaling;
                        if (AttnCap is float cap) dot = Math.Tanh(dot / cap) * cap;
                        scores[j - lo] = dot;
                    }
                    double max = scores.Max(), sum = 0;
                    for (int j = 0; j < scores.Length; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int j = lo; j <= t; j++)
                        for (int i = 0; i < HeadDim; i++) att[hh * HeadDim + i] += scores[j - lo] / sum * v[j][kvh * HeadDim + i];
                }
                var o = MatVec(O[l], att, D);
                if (Gemma) o = RmsNorm(o, PostAttnNorm[l]);
                for (int i = 0; i < D; i++) x[t][i] += o[i];
                var h = RmsNorm(x[t], FfnNorm[l]);
                var g = MatVec(Gate[l], h, F);
                var u = MatVec(Up[l], h, F);
                for (int i = 0; i < F; i++)
                {
                    double a = g[i];
                    double act = Gemma ? 0.5 * a * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (a + 0.044715 * a * a * a))) : a / (1 + Math.Exp(-a));
                    g[i] = act * u[i];
                }
                var f = MatVec(Down[l], g, D);
                if (Gemma) f = RmsNorm(f, PostFfnNorm[l]);
                for (int i = 0; i < D; i++) x[t][i] += f[i];
            }
        }
        var logits = new double[n][];
        for (int t = 0; t < n; t++)
        {
            var h = RmsNorm(x[t], FinalNorm);
            logits[t] = MatVec(Gemma ? Embed : Head, h, Vocab);
            if (FinalCap is float cap)
                for (int i = 0; i < Vocab; i++) logits[t][i] = Math.Tanh(logits[t][i] / cap) * cap;
        }
        return logits;
    }
}
