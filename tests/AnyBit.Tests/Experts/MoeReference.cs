using AnyBit.IO;

namespace AnyBit.Tests.Experts;

/// <summary>
/// A float64 forward pass of the Mixture-of-Experts decoders, written from their definitions (transformers'
/// Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE modules, as llama.cpp's graphs compute them: llama rotates adjacent pairs
/// of its GGUF Q/K rows, the others halves), independent of AnyBit's forward pass and kernels. Reads float32 GGUF
/// tensors by name; scalar loops throughout, for tiny models.
/// </summary>
internal sealed class MoeReference
{
    private readonly GgufFile _g;
    private readonly string _arch;
    private readonly int _d, _heads, _kvHeads, _hd, _experts, _used, _layers;
    private readonly double _eps, _theta;
    private readonly bool _normalize;
    // gpt-oss: sinks, biases, a window on even layers, SOFTMAX_WEIGHT routing, the clamped SwiGLU, YaRN.
    private readonly bool _gptOss;
    private readonly int _window;
    private readonly double _yarnFactor, _yarnOriginal;

    public MoeReference(GgufFile g)
    {
        _g = g;
        _arch = g.GetString("general.architecture")!;
        int Key(string k) => (int)g.GetInteger($"{_arch}.{k}")!;
        _d = Key("embedding_length"); _heads = Key("attention.head_count"); _kvHeads = Key("attention.head_count_kv");
        _hd = (int)(g.GetInteger($"{_arch}.attention.key_length") ?? _d / _heads);
        _experts = Key("expert_count"); _used = Key("expert_used_count"); _layers = Key("block_count");
        _eps = g.GetFloat($"{_arch}.attention.layer_norm_rms_epsilon") ?? 1e-5;
        _theta = g.GetFloat($"{_arch}.rope.freq_base") ?? 10000;
        // transformers: Mixtral always renormalizes the top-k weights; Qwen2-MoE and OLMoE do not (norm_topk_prob
        // false); Qwen3-MoE's published configs set norm_topk_prob, which llama.cpp's graph always applies.
        _normalize = _arch is "llama" or "qwen3moe";
        _gptOss = _arch == "gpt-oss";
        _window = (int)(g.GetInteger($"{_arch}.attention.sliding_window") ?? 0);
        _yarnFactor = g.GetString($"{_arch}.rope.scaling.type") == "yarn" ? g.GetFloat($"{_arch}.rope.scaling.factor")!.Value : 1;
        _yarnOriginal = g.GetInteger($"{_arch}.rope.scaling.original_context_length") ?? 0;
    }

    private double[] T(string name) => _g.Find(name) is { } t ? t.ToFloat32().Select(v => (double)v).ToArray() : null!;
    private bool Has(string name) => _g.Find(name) is not null;

    /// <summary>Logits [tokens][vocab] of every position.</summary>
    public double[][] Logits(int[] tokens)
    {
        int n = tokens.Length, d = _d, q = _heads * _hd, kv = _kvHeads * _hd;
        var embd = T("token_embd.weight");
        var x = tokens.Select(t => embd.AsSpan(t * d, d).ToArray()).ToArray();
        for (int l = 0; l < _layers; l++)
        {
            string b = $"blk.{l}.";
            var xn = x.Select(r => RmsNorm(r, T(b + "attn_norm.weight"))).ToArray();
            var Q = xn.Select(r => MatVec(T(b + "attn_q.weight"), r, q)).ToArray();
            var K = xn.Select(r => MatVec(T(b + "attn_k.weight"), r, kv)).ToArray();
            var V = xn.Select(r => MatVec(T(b + "attn_v.weight"), r, kv)).ToArray();
            if (Has(b + "attn_q.bias"))
                for (int t = 0; t < n; t++) { Add(Q[t], T(b + "attn_q.bias")); Add(K[t], T(b + "attn_k.bias")); Add(V[t], T(b + "attn_v.bias")); }
            if (Has(b + "attn_q_norm.weight"))
            {
                var qn = T(b + "attn_q_norm.weight"); var kn = T(b + "attn_k_norm.weight");
                for (int t = 0; t < n; t++)
                    if (qn.Length == q) { Q[t] = RmsNorm(Q[t], qn); K[t] = RmsNorm(K[t], kn); }
                    else { Q[t] = PerHead(Q[t], _heads, qn); K[t] = PerHead(K[t], _kvHeads, kn); }
            }
            for (int t = 0; t < n; t++) { Rope(Q[t], _heads, t); Rope(K[t], _kvHeads, t); }
            var wo = T(b + "attn_output.weight");
            for (int t = 0; t < n; t++)
            {
                var att = new double[q];
                for (int h = 0; h < _heads; h++)
                {
                    int kh = h / (_heads / _kvHeads);
                    // gpt-oss: even layers see the last _window positions; a sink logit per head joins the softmax.
                    int lo = _gptOss && l % 2 == 0 ? Math.Max(0, t - _window + 1) : 0;
                    bool sink = Has(b + "attn_sinks.weight");
                    var scores = new double[t + 1 + (sink ? 1 : 0)];
                    for (int s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (int i = 0; i < _hd; i++) dot += Q[t][h * _hd + i] * K[s][kh * _hd + i];
                        scores[s] = s < lo ? double.NegativeInfinity : dot / Math.Sqrt(_hd);
                    }
                    if (sink) scores[t + 1] = T(b + "attn_sinks.weight")[h];
                    Softmax(scores);
                    for (int s = lo; s <= t; s++)
                        for (int i = 0; i < _hd; i++) att[h * _hd + i] += scores[s] * V[s][kh * _hd + i];
                }
                var o = MatVec(wo, att, d);
                if (Has(b + "attn_output.bias")) Add(o, T(b + "attn_output.bias"));
                Add(x[t], o);
            }
            // llama.cpp's gpt-oss files name the FFN norm post_attention_norm.
            string ffnNorm = _gptOss ? "post_attention_norm.weight" : "ffn_norm.weight";
            for (int t = 0; t < n; t++) Add(x[t], FeedForward(b, RmsNorm(x[t], T(b + ffnNorm))));
        }
        var head = T("output.weight");
        var norm = T("output_norm.weight");
        return x.Select(r => MatVec(head, RmsNorm(r, norm), head.Length / d)).ToArray();
    }

    private double[] PerHead(double[] v, int heads, double[] w)
    {
        var r = new double[v.Length];
        for (int h = 0; h < heads; h++) RmsNorm(v.AsSpan(h * _hd, _hd).ToArray(), w).CopyTo(r, h * _hd);
        return r;
    }

    private double[] FeedForward(string b, double[] x)
    {
        int d = _d;
        var probs = MatVec(T(b + "ffn_gate_inp.weight"), x, _experts);
        if (Has(b + "ffn_gate_inp.bias")) Add(probs, T(b + "ffn_gate_inp.bias"));
        if (!_gptOss) Softmax(probs);
        var chosen = Enumerable.Range(0, _experts).OrderByDescending(e => probs[e]).Take(_used).ToArray();
        var weights = chosen.Select(e => probs[e]).ToArray();
        if (_gptOss) Softmax(weights); // transformers' GptOssTopKRouter: softmax over the top k logits
        if (_normalize) { double s = weights.Sum(); for (int i = 0; i < weights.Length; i++) weights[i] /= s; }
        var gate = T(b + "ffn_gate_exps.weight"); var up = T(b + "ffn_up_exps.weight"); var down = T(b + "ffn_down_exps.weight");
        int f = gate.Length / _experts / d;
        var y = new double[d];
        for (int j = 0; j < chosen.Length; j++)
        {
            int e = chosen[j];
            var o = _gptOss ? ClampedSwiGlu(b, e, gate.AsSpan(e * f * d, f * d).ToArray(), up.AsSpan(e * f * d, f * d).ToArray(), down.AsSpan(e * d * f, d * f).ToArray(), x, f)
                : SwiGlu(gate.AsSpan(e * f * d, f * d).ToArray(), up.AsSpan(e * f * d, f * d).ToArray(), down.AsSpan(e * d * f, d * f).ToArray(), x, f);
            for (int i = 0; i < d; i++) y[i] += weights[j] * o[i];
        }
        if (Has(b + "ffn_gate_shexp.weight"))
        {
            var sg = T(b + "ffn_gate_shexp.weight");
            int fs = sg.Length / d;
            var o = SwiGlu(sg, T(b + "ffn_up_shexp.weight"), T(b + "ffn_down_shexp.weight"), x, fs);
            double g = 1 / (1 + Math.Exp(-Dot(T(b + "ffn_gate_inp_shexp.weight"), x)));
            for (int i = 0; i < d; i++) y[i] += g * o[i];
        }
        return y;
    }

    private double[] SwiGlu(double[] gate, double[] up, double[] down, double[] x, int f)
    {
        var g = MatVec(gate, x, f); var u = MatVec(up, x, f);
        for (int i = 0; i < f; i++) g[i] = g[i] / (1 + Math.Exp(-g[i])) * u[i];
        return MatVec(down, g, _d);
    }

    /// <summary>
    /// gpt-oss's expert: gate and up with their biases, g = min(gate, 7), u = clamp(up, ±7), (u + 1)·g·σ(1.702·g),
    /// down with its bias (transformers' GptOssExperts).
    /// </summary>
    private double[] ClampedSwiGlu(string b, int e, double[] gate, double[] up, double[] down, double[] x, int f)
    {
        var g = MatVec(gate, x, f); var u = MatVec(up, x, f);
        var gb = T(b + "ffn_gate_exps.bias"); var ub = T(b + "ffn_up_exps.bias"); var db = T(b + "ffn_down_exps.bias");
        for (int i = 0; i < f; i++)
        {
            double gi = Math.Min(g[i] + gb[e * f + i], 7), ui = Math.Clamp(u[i] + ub[e * f + i], -7, 7);
            g[i] = gi / (1 + Math.Exp(-1.702 * gi)) * (ui + 1);
        }
        var y = MatVec(down, g, _d);
        for (int i = 0; i < _d; i++) y[i] += db[e * _d + i];
        return y;
    }

    /// <summary>
    /// The rotation angle's frequency of pair i: θ^(−2i/d), and with YaRN (ggml's rope_yarn) a ramp between it and
    /// it divided by the factor over the correction range of dimensions, floor/ceil of
    /// d·ln(original / (β·2π)) / (2 ln θ) for β = 32 and 1.
    /// </summary>
    private double Frequency(int i)
    {
        double f = Math.Pow(_theta, -2.0 * i / _hd);
        if (_yarnFactor == 1) return f;
        double Dim(double beta) => _hd * Math.Log(_yarnOriginal / (beta * 2 * Math.PI)) / (2 * Math.Log(_theta));
        double low = Math.Max(0, Math.Floor(Dim(32))), high = Math.Min(_hd - 1, Math.Ceiling(Dim(1)));
        double keep = 1 - Math.Clamp((i - low) / Math.Max(0.001, high - low), 0, 1);
        return f / _yarnFactor * (1 - keep) + f * keep;
    }

    private void Rope(double[] v, int heads, int pos)
    {
        bool adjacent = _arch == "llama";
        int half = _hd / 2;
        // YaRN scales cos and sin by 1 + 0.1·ln(factor).
        double m = _yarnFactor == 1 ? 1 : 1 + 0.1 * Math.Log(_yarnFactor);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
            {
                double angle = pos * Frequency(i);
                int a = h * _hd + (adjacent ? 2 * i : i), c = h * _hd + (adjacent ? 2 * i + 1 : i + half);
                double x0 = v[a], x1 = v[c];
                v[a] = m * (x0 * Math.Cos(angle) - x1 * Math.Sin(angle));
                v[c] = m * (x0 * Math.Sin(angle) + x1 * Math.Cos(angle));
            }
    }

    private double[] RmsNorm(double[] x, double[] w)
    {
        double ms = x.Sum(v => v * v) / x.Length, inv = 1 / Math.Sqrt(ms + _eps);
        return x.Select((v, i) => v * inv * w[i]).ToArray();
    }

    private static double[] MatVec(double[] m, double[] x, int rows)
    {
        var y = new double[rows];
        int cols = x.Length;
        for (int r = 0; r < rows; r++) { double s = 0; for (int c = 0; c < cols; c++) s += m[(long)r * cols + c] * x[c]; y[r] = s; }
        return y;
    }

    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
    private static void Add(double[] a, double[] b) { for (int i = 0; i < a.Length; i++) a[i] += b[i]; }

    private static void Softmax(double[] x)
    {
        double max = x.Max(), sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = Math.Exp(x[i] - max); sum += x[i]; }
        for (int i = 0; i < x.Length; i++) x[i] /= sum;
    }
}
