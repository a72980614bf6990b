namespace AnyBit.Models;

/// <summary>
/// One transformer family AnyBit runs, as a descriptor (llama.cpp's <c>llama-arch.cpp</c> row): its names in
/// Hugging Face and GGUF files, how its config keys differ from the common mapping, the tensor roles it has, and the
/// choices of its forward pass. Every family shares one pre-norm decoder forward pass, which reads these flags and
/// never an architecture's name. Descriptors live one per file in <c>Models/Architectures/</c>; the registry
/// (<see cref="All"/>) finds them by name. Instances are singletons: compare by reference.
/// </summary>
public sealed partial class Architecture
{
    /// <summary>Lower-case name, as <c>inspect --json</c> and <c>/v1/models</c> print it.</summary>
    public required string Name { get; init; }
    /// <summary>Name as <c>inspect</c> prints it.</summary>
    public required string DisplayName { get; init; }
    /// <summary>Hugging Face <c>config.json</c> <c>model_type</c> values it is read from.</summary>
    public required string[] HfModelTypes { get; init; }
    /// <summary>GGUF <c>general.architecture</c> it is read from (and the prefix of its <c>{arch}.*</c> keys there).</summary>
    public required string GgufName { get; init; }
    /// <summary>
    /// GGUF <c>general.architecture</c> that <c>quantize</c> writes: the llama.cpp graph that runs it, which is not
    /// always its own name (llama.cpp runs Mistral with its llama graph).
    /// </summary>
    public string? GgufWriteNameOverride { get; init; }
    public string GgufWriteName => GgufWriteNameOverride ?? GgufName;
    /// <summary>
    /// The <c>general.architecture</c> values bitnet.cpp's llama.cpp fork writes for this family, which it is read from
    /// as well. In files of these names ggml type ids 36–39 have the fork's meaning (I2_S, I8_S, TL1, TL2:
    /// <see cref="IO.GgufTypeIds"/>). The first is the name its converter writes now, which <c>quantize</c> writes for a
    /// file holding I2_S (a type only bitnet.cpp runs). Empty for families bitnet.cpp does not run.
    /// </summary>
    public string[] BitnetCppGgufNames { get; init; } = [];

    /// <summary>The tensors it may have, in <see cref="TensorRoles.All"/> order.</summary>
    public required IReadOnlyList<TensorRole> Roles { get; init; }

    /// <summary>Feed-forward activation when the config does not name one (and always, for GGUF files).</summary>
    public Activation DefaultActivation { get; init; } = Activation.Silu;
    /// <summary>Hugging Face's <c>sliding_window</c> applies without <c>use_sliding_window</c> (Mistral).</summary>
    public bool SlidingWindowAlwaysOn { get; init; }
    /// <summary>
    /// llama.cpp's graph for it rotates adjacent pairs (2i, 2i+1): GGUF files store Q/K in that order, and Hugging
    /// Face Q/K rows are permuted on the way into GGUF, as convert_hf_to_gguf.py does for llama. Graphs that rotate
    /// halves (NEOX order, as Hugging Face does) store Q/K unchanged.
    /// </summary>
    public bool GgufAdjacentRopePairs { get; init; }
    /// <summary>Layer linear weights are ternary as trained (BitNet b1.58): re-ternarized at load and by <c>quantize</c>.</summary>
    public bool TernaryWeights { get; init; }
    /// <summary>Linear inputs are quantized to int8 per token as trained (W1.58A8), unless a float reference is asked for.</summary>
    public bool Int8Activations { get; init; }
    /// <summary>GPTQ, AWQ and rotation apply: they assume float activations and float weights to compensate in.</summary>
    public bool AccuracyMethodsApply { get; init; } = true;

    /// <summary>
    /// Its QK-norm normalizes each whole projection (OLMoE: weights of [heads·head_dim]) rather than each head
    /// (Qwen3: [head_dim]).
    /// </summary>
    public bool QkNormAcrossHeads { get; init; }
    /// <summary>
    /// Its feed-forward blocks are Mixtures of Experts (always, or where the file says so for Llama, which Mixtral's
    /// GGUF files use).
    /// </summary>
    public bool HasExperts => Roles.Contains(TensorRoles.FfnGateExps);
    /// <summary>Every feed-forward block is experts: the family has no dense one (Llama has both, by its file).</summary>
    public bool ExpertsOnly => HasExperts && !Has(TensorRoles.FfnGate);
    /// <summary>
    /// llama.cpp's graph divides the selected experts' weights by their sum (its <c>norm_w</c>), when the GGUF file
    /// does not say (<c>expert_weights_norm</c>); Hugging Face configs say it with <c>norm_topk_prob</c>, whose
    /// default is this too.
    /// </summary>
    public bool NormalizesExpertWeights { get; init; }
    /// <summary>
    /// Norms scale by (1 + w) (Gemma): Hugging Face stores w, GGUF stores 1 + w (convert_hf_to_gguf adds the one), so a
    /// Hugging Face folder's norm weights are read with 1 added and both run the plain RMSNorm.
    /// </summary>
    public bool NormWeightOffset { get; init; }
    /// <summary>Token embeddings are multiplied by √hidden (Gemma).</summary>
    public bool ScalesEmbedding { get; init; }
    /// <summary>
    /// Layers alternate between the sliding window and full attention: layer l is global when (l + 1) mod p = 0
    /// (Gemma 2: 2, even layers local; Gemma 3: 6, five local to one global). Null: every layer uses the window.
    /// </summary>
    public int? SlidingLayerPeriod { get; init; }
    /// <summary>RoPE base of the sliding-window layers in GGUF files, which do not store it (llama.cpp's Gemma 3: 10000).</summary>
    public double? GgufLocalRopeTheta { get; init; }
    /// <summary>
    /// The block count at which llama.cpp scales queries by 1/√(hidden/heads) instead of 1/√head_dim (its rule for the
    /// 27B Gemmas, whose <c>query_pre_attn_scalar</c> GGUF does not store); null when GGUF files always use head_dim.
    /// </summary>
    public int? GgufWideQueryScalarLayers { get; init; }
    /// <summary>
    /// Hugging Face names that differ from the table's for this family (Gemma 2's <c>post_attention_layernorm</c> is the
    /// post-attention norm, its <c>pre_feedforward_layernorm</c> the FFN norm).
    /// </summary>
    public IReadOnlyDictionary<TensorRole, string> HfRoleNames { get; init; } = new Dictionary<TensorRole, string>();
    /// <summary>
    /// Fused tensors its files store (Phi-3's <c>attn_qkv</c> and gate+up <c>ffn_up</c>; rows of
    /// <see cref="TensorRoles.Fused"/>): split into their parts' rows at load, fused again by <c>quantize</c>.
    /// </summary>
    public IReadOnlyList<TensorRole> FusedRoles { get; init; } = [];

    /// <summary>
    /// GGUF names that differ from the table's for this family (gpt-oss's FFN norm is llama.cpp's
    /// <c>post_attention_norm</c>): read under the table's name, written back under the family's by <c>quantize</c>.
    /// </summary>
    public IReadOnlyDictionary<TensorRole, string> GgufRoleNames { get; init; } = new Dictionary<TensorRole, string>();
    /// <summary>Router gating when the file does not say (GGUF <c>expert_gating_func</c>; Hugging Face configs never do).</summary>
    public ExpertGating DefaultExpertGating { get; init; } = ExpertGating.Softmax;
    /// <summary>
    /// Experts run gpt-oss's clamped SwiGLU (<see cref="ExpertConfig.SwigluLimit"/>) with this limit when the config
    /// does not give one (llama.cpp's graph: 7); null for the plain SwiGLU.
    /// </summary>
    public float? DefaultSwigluLimit { get; init; }

    /// <summary>
    /// Hugging Face stores the experts as transformers' GptOssExperts: one interleaved <c>gate_up_proj</c>
    /// (<see cref="TensorRoles.FfnGateUpExps"/>) and its bias, float tensors input-major ([E, in, out]), MXFP4 ones
    /// [E, out, in]; split and transposed at load by <see cref="InterleavedExperts"/>.
    /// </summary>
    public bool HfInterleavedExperts { get; init; }

    /// <summary>The table name of a tensor stored in this family's GGUF files under <paramref name="fileName"/>.</summary>
    public string CanonicalGgufName(string fileName)
    {
        foreach (var (role, pattern) in GgufRoleNames)
            if (TensorRoles.MatchLayerPattern(fileName, pattern) is int layer) return role.GgufName(layer);
        return fileName;
    }

    /// <summary>The name this family's GGUF files store the table's tensor <paramref name="canonical"/> under.</summary>
    public string FileGgufName(string canonical)
    {
        if (GgufRoleNames.Count > 0 && TensorRoles.FromGguf(canonical) is ({ } role, int layer) && GgufRoleNames.TryGetValue(role, out var pattern))
            return layer < 0 ? pattern : pattern.Replace("{i}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        return canonical;
    }

    /// <summary>True when the architecture has tensor role <paramref name="role"/>.</summary>
    public bool Has(TensorRole role) => Roles.Contains(role);

    public override string ToString() => DisplayName;

    /// <summary>The roles of a Llama-style dense decoder without biases or extra norms, and <paramref name="extra"/>.</summary>
    private static TensorRole[] Dense(params TensorRole[] extra) => Decoder([.. TensorRoles.DenseFeedForward, .. extra]);

    /// <summary>The roles of a decoder whose feed-forward blocks are Mixtures of Experts, and <paramref name="extra"/>.</summary>
    private static TensorRole[] Sparse(params TensorRole[] extra) => Decoder([.. TensorRoles.Experts, .. extra]);

    /// <summary>The attention core, the norms, the head and <paramref name="extra"/>, in table order.</summary>
    private static TensorRole[] Decoder(TensorRole[] extra) =>
        TensorRoles.All.Where(r => r.Required || r == TensorRoles.Output || r == TensorRoles.RopeFreqs || extra.Contains(r)).ToArray();
}
