using System.Globalization;

namespace AnyBit.Models;

/// <summary>
/// The tensor-role table (llama.cpp's <c>LLM_TENSOR_NAMES</c>): one row per tensor a dense decoder may have, with its
/// GGUF, Hugging Face and llama2.c names, its shape, its kind, the input it reads, and where the loaded model keeps
/// it. The loader, the quantizer, calibration, the accuracy methods, synth, bench and the llama2.c reader all look
/// tensors up here; an architecture lists the rows it has (<see cref="Architecture.Roles"/>).
/// Rows are in llama.cpp's file order (embedding, each block's tensors, output norm, head), which is the order
/// <c>quantize</c> writes. Mixture-of-experts weights are one 3-D tensor per projection and layer
/// (<c>blk.{i}.ffn_gate_exps.weight</c>, [experts, rows, columns]); Hugging Face's per-expert tensors are read as
/// its slices.
/// </summary>
public static class TensorRoles
{
    private static long[] D(ModelConfig c) => [c.HiddenSize];
    private static long[] Q(ModelConfig c) => [c.QueryWidth];
    private static long[] Kv(ModelConfig c) => [c.KvWidth];

    public static readonly TensorRole TokenEmbd = new()
    {
        Gguf = "token_embd.weight", HuggingFace = "model.embed_tokens.weight", Llama2c = "token_embedding_table",
        Kind = TensorKind.Embedding, Required = true, Shape = c => [c.VocabSize, c.HiddenSize], BufferOf = (w, _) => w.TokenEmbedding.Float,
    };
    public static readonly TensorRole AttnNorm = new()
    {
        Gguf = "blk.{i}.attn_norm.weight", HuggingFace = "model.layers.{i}.input_layernorm.weight", Llama2c = "rms_att_weight",
        Kind = TensorKind.Norm, Required = true, Shape = D, BufferOf = (w, l) => w.Layers[l].AttnNorm,
    };
    public static readonly TensorRole AttnQ = new()
    {
        Gguf = "blk.{i}.attn_q.weight", HuggingFace = "model.layers.{i}.self_attn.q_proj.weight", Llama2c = "wq",
        Kind = TensorKind.Linear, Required = true, Input = LinearInput.Attention, RotaryHeads = c => c.NumHeads,
        Shape = c => [c.QueryWidth, c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Wq,
    };
    public static readonly TensorRole AttnQBias = new()
    {
        Gguf = "blk.{i}.attn_q.bias", HuggingFace = "model.layers.{i}.self_attn.q_proj.bias",
        Kind = TensorKind.Bias, RotaryHeads = c => c.NumHeads, Shape = Q, BufferOf = (w, l) => w.Layers[l].Bq,
    };
    public static readonly TensorRole AttnK = new()
    {
        Gguf = "blk.{i}.attn_k.weight", HuggingFace = "model.layers.{i}.self_attn.k_proj.weight", Llama2c = "wk",
        Kind = TensorKind.Linear, Required = true, Input = LinearInput.Attention, RotaryHeads = c => c.NumKvHeads,
        Shape = c => [c.KvWidth, c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Wk,
    };
    public static readonly TensorRole AttnKBias = new()
    {
        Gguf = "blk.{i}.attn_k.bias", HuggingFace = "model.layers.{i}.self_attn.k_proj.bias",
        Kind = TensorKind.Bias, RotaryHeads = c => c.NumKvHeads, Shape = Kv, BufferOf = (w, l) => w.Layers[l].Bk,
    };
    public static readonly TensorRole AttnV = new()
    {
        Gguf = "blk.{i}.attn_v.weight", HuggingFace = "model.layers.{i}.self_attn.v_proj.weight", Llama2c = "wv",
        Kind = TensorKind.Linear, Required = true, Input = LinearInput.Attention,
        Shape = c => [c.KvWidth, c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Wv,
    };
    public static readonly TensorRole AttnVBias = new()
    {
        Gguf = "blk.{i}.attn_v.bias", HuggingFace = "model.layers.{i}.self_attn.v_proj.bias",
        Kind = TensorKind.Bias, Shape = Kv, BufferOf = (w, l) => w.Layers[l].Bv,
    };
    public static readonly TensorRole AttnOutput = new()
    {
        Gguf = "blk.{i}.attn_output.weight", HuggingFace = "model.layers.{i}.self_attn.o_proj.weight", Llama2c = "wo",
        Kind = TensorKind.Linear, Required = true, Input = LinearInput.AttentionOutput,
        Shape = c => [c.HiddenSize, c.QueryWidth], LinearOf = (w, l) => w.Layers[l].Wo,
    };
    public static readonly TensorRole AttnOutputBias = new()
    {
        Gguf = "blk.{i}.attn_output.bias", HuggingFace = "model.layers.{i}.self_attn.o_proj.bias",
        Kind = TensorKind.Bias, Shape = D, BufferOf = (w, l) => w.Layers[l].Bo,
    };
    public static readonly TensorRole AttnQNorm = new()
    {
        Gguf = "blk.{i}.attn_q_norm.weight", HuggingFace = "model.layers.{i}.self_attn.q_norm.weight",
        Kind = TensorKind.Norm, Shape = c => [c.Architecture.QkNormAcrossHeads ? c.QueryWidth : c.HeadDim], BufferOf = (w, l) => w.Layers[l].QNorm,
    };
    public static readonly TensorRole AttnKNorm = new()
    {
        Gguf = "blk.{i}.attn_k_norm.weight", HuggingFace = "model.layers.{i}.self_attn.k_norm.weight",
        Kind = TensorKind.Norm, Shape = c => [c.Architecture.QkNormAcrossHeads ? c.KvWidth : c.HeadDim], BufferOf = (w, l) => w.Layers[l].KNorm,
    };
    public static readonly TensorRole AttnSubNorm = new()
    {
        Gguf = "blk.{i}.attn_sub_norm.weight", HuggingFace = "model.layers.{i}.self_attn.attn_sub_norm.weight",
        Kind = TensorKind.Norm, Shape = Q, BufferOf = (w, l) => w.Layers[l].AttnSubNorm,
    };
    /// <summary>
    /// gpt-oss's attention sinks: one learned logit per query head that joins each softmax (its probability mass
    /// attends to nothing).
    /// </summary>
    public static readonly TensorRole AttnSinks = new()
    {
        Gguf = "blk.{i}.attn_sinks.weight", HuggingFace = "model.layers.{i}.self_attn.sinks",
        Kind = TensorKind.Bias, Shape = c => [c.NumHeads], BufferOf = (w, l) => w.Layers[l].AttnSinks,
    };
    /// <summary>Gemma 2/3's norm of the attention output before the residual add (Hugging Face names it per family).</summary>
    public static readonly TensorRole AttnPostNorm = new()
    {
        Gguf = "blk.{i}.post_attention_norm.weight",
        Kind = TensorKind.Norm, Shape = D, BufferOf = (w, l) => w.Layers[l].AttnPostNorm,
    };
    public static readonly TensorRole FfnNorm = new()
    {
        Gguf = "blk.{i}.ffn_norm.weight", HuggingFace = "model.layers.{i}.post_attention_layernorm.weight", Llama2c = "rms_ffn_weight",
        Kind = TensorKind.Norm, Required = true, Shape = D, BufferOf = (w, l) => w.Layers[l].FfnNorm,
    };
    public static readonly TensorRole FfnGate = new()
    {
        Gguf = "blk.{i}.ffn_gate.weight", HuggingFace = "model.layers.{i}.mlp.gate_proj.weight", Llama2c = "w1",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [c.IntermediateSize, c.HiddenSize], LinearOf = (w, l) => w.Layers[l].WGate,
    };
    public static readonly TensorRole FfnUp = new()
    {
        Gguf = "blk.{i}.ffn_up.weight", HuggingFace = "model.layers.{i}.mlp.up_proj.weight", Llama2c = "w3",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [c.IntermediateSize, c.HiddenSize], LinearOf = (w, l) => w.Layers[l].WUp,
    };
    public static readonly TensorRole FfnDown = new()
    {
        Gguf = "blk.{i}.ffn_down.weight", HuggingFace = "model.layers.{i}.mlp.down_proj.weight", Llama2c = "w2",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForwardDown,
        Shape = c => [c.HiddenSize, c.IntermediateSize], LinearOf = (w, l) => w.Layers[l].WDown,
    };
    public static readonly TensorRole FfnSubNorm = new()
    {
        Gguf = "blk.{i}.ffn_sub_norm.weight", HuggingFace = "model.layers.{i}.mlp.ffn_sub_norm.weight",
        Kind = TensorKind.Norm, Shape = c => [c.IntermediateSize], BufferOf = (w, l) => w.Layers[l].FfnSubNorm,
    };
    // ---- Mixture-of-Experts feed-forward (in place of ffn_gate/ffn_up/ffn_down where the config has experts) ----
    private static int Ffe(ModelConfig c) => c.Experts?.FfnSize ?? 0;
    private static int Ffs(ModelConfig c) => c.Experts?.SharedFfnSize ?? 0;
    private static int E(ModelConfig c) => c.Experts?.Count ?? 0;

    /// <summary>The router: one logit per expert.</summary>
    public static readonly TensorRole FfnGateInp = new()
    {
        Gguf = "blk.{i}.ffn_gate_inp.weight", HuggingFace = "model.layers.{i}.mlp.gate.weight",
        HuggingFaceAliases = ["model.layers.{i}.block_sparse_moe.gate.weight"],
        Kind = TensorKind.Router, Shape = c => [E(c), c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Experts?.Router,
    };
    /// <summary>gpt-oss's router bias: one per expert, added to the logits.</summary>
    public static readonly TensorRole FfnGateInpBias = new()
    {
        Gguf = "blk.{i}.ffn_gate_inp.bias", HuggingFace = "model.layers.{i}.mlp.router.bias",
        Kind = TensorKind.Bias, Shape = c => [E(c)], BufferOf = (w, l) => w.Layers[l].Experts?.RouterBias,
    };
    public static readonly TensorRole FfnGateExps = new()
    {
        Gguf = "blk.{i}.ffn_gate_exps.weight", GgufPerExpert = "blk.{i}.ffn_gate.{e}.weight",
        HuggingFace = "model.layers.{i}.mlp.experts.{e}.gate_proj.weight", HuggingFaceAliases = ["model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight"],
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [E(c), Ffe(c), c.HiddenSize], ExpertsOf = (w, l) => w.Layers[l].Experts?.Gate,
    };
    public static readonly TensorRole FfnUpExps = new()
    {
        Gguf = "blk.{i}.ffn_up_exps.weight", GgufPerExpert = "blk.{i}.ffn_up.{e}.weight",
        HuggingFace = "model.layers.{i}.mlp.experts.{e}.up_proj.weight", HuggingFaceAliases = ["model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight"],
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [E(c), Ffe(c), c.HiddenSize], ExpertsOf = (w, l) => w.Layers[l].Experts?.Up,
    };
    public static readonly TensorRole FfnDownExps = new()
    {
        Gguf = "blk.{i}.ffn_down_exps.weight", GgufPerExpert = "blk.{i}.ffn_down.{e}.weight",
        HuggingFace = "model.layers.{i}.mlp.experts.{e}.down_proj.weight", HuggingFaceAliases = ["model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight"],
        Kind = TensorKind.Linear, Input = LinearInput.FeedForwardDown,
        Shape = c => [E(c), c.HiddenSize, Ffe(c)], ExpertsOf = (w, l) => w.Layers[l].Experts?.Down,
    };
    // gpt-oss's expert biases, one row per expert ([experts, rows]); Hugging Face holds gate and up in one interleaved
    // tensor (FfnGateUpExpsBias).
    public static readonly TensorRole FfnGateExpsBias = new()
    {
        Gguf = "blk.{i}.ffn_gate_exps.bias", Kind = TensorKind.Bias, Shape = c => [E(c), Ffe(c)], BufferOf = (w, l) => w.Layers[l].Experts?.GateBias,
    };
    public static readonly TensorRole FfnUpExpsBias = new()
    {
        Gguf = "blk.{i}.ffn_up_exps.bias", Kind = TensorKind.Bias, Shape = c => [E(c), Ffe(c)], BufferOf = (w, l) => w.Layers[l].Experts?.UpBias,
    };
    public static readonly TensorRole FfnDownExpsBias = new()
    {
        Gguf = "blk.{i}.ffn_down_exps.bias", HuggingFace = "model.layers.{i}.mlp.experts.down_proj_bias",
        Kind = TensorKind.Bias, Shape = c => [E(c), c.HiddenSize], BufferOf = (w, l) => w.Layers[l].Experts?.DownBias,
    };
    /// <summary>Qwen2-MoE's gate on the shared expert's output: sigmoid(x · w), one number per token.</summary>
    public static readonly TensorRole FfnGateInpShexp = new()
    {
        Gguf = "blk.{i}.ffn_gate_inp_shexp.weight", HuggingFace = "model.layers.{i}.mlp.shared_expert_gate.weight",
        Kind = TensorKind.Router, Shape = D, BufferOf = (w, l) => w.Layers[l].Experts?.SharedGateInput,
    };
    public static readonly TensorRole FfnGateShexp = new()
    {
        Gguf = "blk.{i}.ffn_gate_shexp.weight", HuggingFace = "model.layers.{i}.mlp.shared_expert.gate_proj.weight",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [Ffs(c), c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Experts?.SharedGate,
    };
    public static readonly TensorRole FfnUpShexp = new()
    {
        Gguf = "blk.{i}.ffn_up_shexp.weight", HuggingFace = "model.layers.{i}.mlp.shared_expert.up_proj.weight",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward,
        Shape = c => [Ffs(c), c.HiddenSize], LinearOf = (w, l) => w.Layers[l].Experts?.SharedUp,
    };
    public static readonly TensorRole FfnDownShexp = new()
    {
        Gguf = "blk.{i}.ffn_down_shexp.weight", HuggingFace = "model.layers.{i}.mlp.shared_expert.down_proj.weight",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForwardDown,
        Shape = c => [c.HiddenSize, Ffs(c)], LinearOf = (w, l) => w.Layers[l].Experts?.SharedDown,
    };
    /// <summary>Gemma 2/3's norm of the feed-forward output before the residual add.</summary>
    public static readonly TensorRole FfnPostNorm = new()
    {
        Gguf = "blk.{i}.post_ffw_norm.weight", HuggingFace = "model.layers.{i}.post_feedforward_layernorm.weight",
        Kind = TensorKind.Norm, Shape = D, BufferOf = (w, l) => w.Layers[l].FfnPostNorm,
    };
    public static readonly TensorRole OutputNorm = new()
    {
        Gguf = "output_norm.weight", HuggingFace = "model.norm.weight", Llama2c = "rms_final_weight",
        Kind = TensorKind.Norm, Required = true, Shape = D, BufferOf = (w, _) => w.OutputNorm,
    };
    /// <summary>The output head; absent when tied to the embedding.</summary>
    public static readonly TensorRole Output = new()
    {
        Gguf = "output.weight", HuggingFace = "lm_head.weight", Llama2c = "wcls",
        Kind = TensorKind.Linear, Input = LinearInput.Output,
        Shape = c => [c.VocabSize, c.HiddenSize], LinearOf = (w, _) => w.Output,
    };
    /// <summary>llama.cpp's Llama-3 RoPE scaling as stored divisors; the runtime keeps them with the rotary tables.</summary>
    public static readonly TensorRole RopeFreqs = new()
    {
        Gguf = "rope_freqs.weight", Kind = TensorKind.RopeFactors, Shape = c => [c.HeadDim / 2],
    };

    /// <summary>Phi-3's LongRoPE divisors for contexts beyond the original (llama.cpp's names; Hugging Face keeps them in config.json).</summary>
    public static readonly TensorRole RopeFactorsLong = new()
    {
        Gguf = "rope_factors_long.weight", Kind = TensorKind.RopeFactors, Shape = c => [c.HeadDim / 2],
    };
    /// <summary>Phi-3's LongRoPE divisors for contexts up to the original.</summary>
    public static readonly TensorRole RopeFactorsShort = new()
    {
        Gguf = "rope_factors_short.weight", Kind = TensorKind.RopeFactors, Shape = c => [c.HeadDim / 2],
    };

    /// <summary>Every role, in file order: global roles before the blocks, the per-layer roles, global roles after.</summary>
    public static readonly IReadOnlyList<TensorRole> All =
    [
        TokenEmbd,
        AttnNorm, AttnQ, AttnQBias, AttnK, AttnKBias, AttnV, AttnVBias, AttnOutput, AttnOutputBias,
        AttnQNorm, AttnKNorm, AttnSubNorm, AttnSinks, AttnPostNorm, FfnNorm, FfnGate, FfnUp, FfnDown, FfnSubNorm, FfnPostNorm,
        FfnGateInp, FfnGateInpBias, FfnGateExps, FfnUpExps, FfnDownExps, FfnGateExpsBias, FfnUpExpsBias, FfnDownExpsBias,
        FfnGateInpShexp, FfnGateShexp, FfnUpShexp, FfnDownShexp,
        OutputNorm, Output, RopeFreqs, RopeFactorsLong, RopeFactorsShort,
    ];

    /// <summary>The dense feed-forward block's linears (SwiGLU), which a Mixture-of-Experts layer has instead as experts.</summary>
    public static readonly IReadOnlyList<TensorRole> DenseFeedForward = [FfnGate, FfnUp, FfnDown];
    /// <summary>The roles of a Mixture-of-Experts feed-forward block without a shared expert.</summary>
    public static readonly IReadOnlyList<TensorRole> Experts = [FfnGateInp, FfnGateExps, FfnUpExps, FfnDownExps];
    /// <summary>The biases of the router and the experts (gpt-oss).</summary>
    public static readonly IReadOnlyList<TensorRole> ExpertBiases = [FfnGateInpBias, FfnGateExpsBias, FfnUpExpsBias, FfnDownExpsBias];
    /// <summary>The roles of a shared expert beside the routed ones (Qwen2-MoE).</summary>
    public static readonly IReadOnlyList<TensorRole> SharedExpert = [FfnGateInpShexp, FfnGateShexp, FfnUpShexp, FfnDownShexp];

    /// <summary>Phi-3's fused Q, K and V rows (<c>qkv_proj</c>), split at load into <see cref="AttnQ"/>, <see cref="AttnK"/>, <see cref="AttnV"/>.</summary>
    public static readonly TensorRole AttnQkv = new()
    {
        Gguf = "blk.{i}.attn_qkv.weight", HuggingFace = "model.layers.{i}.self_attn.qkv_proj.weight",
        Kind = TensorKind.Linear, Input = LinearInput.Attention, Parts = [AttnQ, AttnK, AttnV],
        Shape = c => [c.QueryWidth + 2 * c.KvWidth, c.HiddenSize],
    };
    /// <summary>
    /// Phi-3's fused gate and up rows (<c>gate_up_proj</c>, gate first), which llama.cpp stores as a [2F, D]
    /// <c>ffn_up</c>; split at load into <see cref="FfnGate"/> and <see cref="FfnUp"/>.
    /// </summary>
    public static readonly TensorRole FfnGateUp = new()
    {
        Gguf = "blk.{i}.ffn_up.weight", HuggingFace = "model.layers.{i}.mlp.gate_up_proj.weight",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward, Parts = [FfnGate, FfnUp],
        Shape = c => [2L * c.IntermediateSize, c.HiddenSize],
    };

    /// <summary>
    /// gpt-oss's experts as transformers holds them (<c>mlp.experts.gate_up_proj</c>): gate and up of every expert in
    /// one tensor, their outputs interleaved (gate j at 2j, up j at 2j + 1), stored [E, D, 2F] (input-major) in float
    /// and [E, 2F, D] as MXFP4 blocks. Split at load into <see cref="FfnGateExps"/> and <see cref="FfnUpExps"/>
    /// (<see cref="InterleavedExperts"/>); GGUF files never hold it.
    /// </summary>
    public static readonly TensorRole FfnGateUpExps = new()
    {
        Gguf = "blk.{i}.ffn_gate_up_exps.weight", HuggingFace = "model.layers.{i}.mlp.experts.gate_up_proj",
        Kind = TensorKind.Linear, Input = LinearInput.FeedForward, Parts = [FfnGateExps, FfnUpExps],
        Shape = c => [E(c), 2L * Ffe(c), c.HiddenSize],
    };
    /// <summary>The biases of <see cref="FfnGateUpExps"/>, [E, 2F], interleaved likewise.</summary>
    public static readonly TensorRole FfnGateUpExpsBias = new()
    {
        Gguf = "blk.{i}.ffn_gate_up_exps.bias", HuggingFace = "model.layers.{i}.mlp.experts.gate_up_proj_bias",
        Kind = TensorKind.Bias, Parts = [FfnGateExpsBias, FfnUpExpsBias], Shape = c => [E(c), 2L * Ffe(c)],
    };

    /// <summary>Fused tensors, outside <see cref="All"/>: files store them, the loaded model holds their parts.</summary>
    public static readonly IReadOnlyList<TensorRole> Fused = [AttnQkv, FfnGateUp, FfnGateUpExps, FfnGateUpExpsBias];

    /// <summary>The single linear layers of a decoder block, in file order (not the experts).</summary>
    public static readonly IReadOnlyList<TensorRole> LayerLinears = All.Where(r => r.IsLayerLinear).ToArray();

    private const string GgufLayerPrefix = "blk.{i}.", HfLayerPrefix = "model.layers.{i}.";
    private static readonly Dictionary<string, TensorRole> GgufGlobal = All.Where(r => !r.PerLayer).ToDictionary(r => r.Gguf);
    private static readonly Dictionary<string, TensorRole> GgufLayer = All.Where(r => r.PerLayer).ToDictionary(r => Suffix(r.Gguf, GgufLayerPrefix));
    private static readonly Dictionary<string, TensorRole> HfGlobal = All.Where(r => r.HuggingFace is not null && !r.PerLayer).ToDictionary(r => r.HuggingFace!);
    private static readonly Dictionary<string, TensorRole> HfLayer = All.Concat(Fused).Where(r => r.HuggingFace is not null && r.PerLayer)
        .SelectMany(r => r.HuggingFaceAliases.Prepend(r.HuggingFace!).Select(name => (Suffix(name, HfLayerPrefix), r)))
        .ToDictionary(p => p.Item1, p => p.r);

    private static string Suffix(string pattern, string prefix) =>
        pattern.StartsWith(prefix, StringComparison.Ordinal) ? pattern[prefix.Length..] : throw new InvalidOperationException($"{pattern} does not start with {prefix}");

    /// <summary>The role and layer (−1 for global tensors) of a GGUF tensor name; null for names outside the table.</summary>
    public static (TensorRole Role, int Layer)? FromGguf(string name)
    {
        if (GgufGlobal.TryGetValue(name, out var global)) return (global, -1);
        return SplitLayer(name, "blk.") is (string digits, string rest) && GgufLayer.TryGetValue(rest, out var role)
            ? (role, int.Parse(digits, CultureInfo.InvariantCulture)) : null;
    }

    /// <summary>
    /// The GGUF name of a Hugging Face tensor (<c>model.layers.3.self_attn.q_proj.weight</c> →
    /// <c>blk.3.attn_q.weight</c>); null for tensors the forward pass does not use.
    /// </summary>
    public static string? GgufNameOfHuggingFace(string hfName)
    {
        if (HfGlobal.TryGetValue(hfName, out var global)) return global.Gguf;
        if (SplitLayer(hfName, "model.layers.") is not (string digits, string rest)) return null;
        if (HfLayer.TryGetValue(rest, out var role)) return role.Gguf.Replace("{i}", digits, StringComparison.Ordinal);
        // One expert's tensor (mlp.experts.3.gate_proj.weight): its slice's GGUF name, blk.N.ffn_gate.3.weight.
        if (ExpertIndex(rest) is (string expert, string pattern) && HfLayer.TryGetValue(pattern, out var experts) && experts.IsExperts)
            return experts.GgufPerExpert!.Replace("{i}", digits, StringComparison.Ordinal).Replace("{e}", expert, StringComparison.Ordinal);
        return null;
    }

    /// <summary>Splits <c>….experts.{digits}.…</c> into the digits and the name with <c>{e}</c> in their place.</summary>
    private static (string Expert, string Pattern)? ExpertIndex(string name)
    {
        const string marker = ".experts.";
        int at = name.IndexOf(marker, StringComparison.Ordinal);
        return at < 0 ? null : NumberAt(name, at + marker.Length);
    }

    /// <summary>
    /// The number at <paramref name="start"/> of <paramref name="name"/> (digits followed by a dot) and the name with
    /// <c>{e}</c> in its place; null when no such number is there.
    /// </summary>
    private static (string Number, string Pattern)? NumberAt(string name, int start)
    {
        int end = start;
        while (end < name.Length && name[end] is >= '0' and <= '9') end++;
        if (end == start || end == name.Length || name[end] != '.') return null;
        return (name[start..end], string.Concat(name.AsSpan(0, start), "{e}", name.AsSpan(end)));
    }

    private static readonly Dictionary<string, TensorRole> GgufPerExpertNames = All.Where(r => r.IsExperts).ToDictionary(r => Suffix(r.GgufPerExpert!, GgufLayerPrefix));

    /// <summary>
    /// The 3-D expert role, layer and expert of one expert's GGUF name (llama.cpp's per-expert
    /// <c>blk.3.ffn_gate.5.weight</c>, <see cref="TensorRole.GgufPerExpert"/>); null for other names.
    /// </summary>
    public static (TensorRole Role, int Layer, int Expert)? FromGgufPerExpert(string name)
    {
        if (SplitLayer(name, "blk.") is not (string layer, string rest)) return null;
        int dot = rest.IndexOf('.');
        return dot > 0 && NumberAt(rest, dot + 1) is (string expert, string pattern) && GgufPerExpertNames.TryGetValue(pattern, out var role)
            ? (role, int.Parse(layer, CultureInfo.InvariantCulture), int.Parse(expert, CultureInfo.InvariantCulture)) : null;
    }

    /// <summary>
    /// The GGUF name of a Hugging Face tensor of <paramref name="architecture"/>, whose own names
    /// (<see cref="Architecture.HfRoleNames"/>) come before the table's; null for tensors the forward pass does not use.
    /// </summary>
    public static string? GgufNameOfHuggingFace(string hfName, Architecture architecture)
    {
        foreach (var (role, pattern) in architecture.HfRoleNames)
        {
            if (!role.PerLayer) { if (hfName == pattern) return role.Gguf; continue; }
            if (SplitLayer(hfName, "model.layers.") is (string digits, string rest) && rest == Suffix(pattern, HfLayerPrefix))
                return role.Gguf.Replace("{i}", digits, StringComparison.Ordinal);
        }
        string? name = GgufNameOfHuggingFace(hfName);
        // A table name the family gives another meaning is not read as the table's role.
        return name is not null && FromGguf(name) is ({ } r, _) && architecture.HfRoleNames.ContainsKey(r) ? null : name;
    }

    /// <summary>The Hugging Face name pattern of <paramref name="role"/> in <paramref name="architecture"/>'s checkpoints, if it has one.</summary>
    public static string? HuggingFaceName(TensorRole role, Architecture architecture) =>
        architecture.HfRoleNames.TryGetValue(role, out var name) ? name : role.HuggingFace;

    /// <summary>The role held in a llama2.c checkpoint field (<c>wq</c>).</summary>
    public static TensorRole FromLlama2c(string field) =>
        All.FirstOrDefault(r => r.Llama2c == field) ?? throw new ArgumentException($"llama2.c has no field '{field}'", nameof(field));

    /// <summary>
    /// The tensors of <paramref name="roles"/> for a model with <paramref name="layers"/> layers, in file order: each
    /// global role, and the per-layer roles layer by layer where the block stands in <see cref="All"/>.
    /// </summary>
    public static IEnumerable<(TensorRole Role, int Layer, string Name)> InFileOrder(IReadOnlyCollection<TensorRole> roles, int layers)
    {
        bool blocksDone = false;
        foreach (var role in All)
        {
            if (!role.PerLayer)
            {
                if (roles.Contains(role)) yield return (role, -1, role.Gguf);
                continue;
            }
            if (blocksDone) continue;
            blocksDone = true;
            for (int l = 0; l < layers; l++)
                foreach (var r in All)
                    if (r.PerLayer && roles.Contains(r)) yield return (r, l, r.GgufName(l));
        }
    }

    /// <summary>The layer of <paramref name="name"/> when it is <paramref name="pattern"/> with <c>{i}</c> a layer number (−1 for a global pattern); null otherwise.</summary>
    internal static int? MatchLayerPattern(string name, string pattern)
    {
        int at = pattern.IndexOf("{i}", StringComparison.Ordinal);
        if (at < 0) return name == pattern ? -1 : null;
        string head = pattern[..at], tail = pattern[(at + 3)..];
        if (name.Length <= head.Length + tail.Length || !name.StartsWith(head, StringComparison.Ordinal) || !name.EndsWith(tail, StringComparison.Ordinal)) return null;
        var digits = name.AsSpan(head.Length, name.Length - head.Length - tail.Length);
        foreach (char ch in digits) if (ch is < '0' or > '9') return null;
        return int.Parse(digits, CultureInfo.InvariantCulture);
    }

    /// <summary>Splits <c>{prefix}{digits}.{rest}</c>; null when the name is not of that form.</summary>
    private static (string Digits, string Tail)? SplitLayer(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.', prefix.Length);
        if (dot <= prefix.Length) return null;
        string digits = name[prefix.Length..dot];
        foreach (char ch in digits) if (ch is < '0' or > '9') return null;
        return (digits, name[(dot + 1)..]);
    }
}
