using AnyBit.IO;

namespace AnyBit.Models;

/// <summary>Reads the model hyperparameters from GGUF metadata (<c>{arch}.embedding_length</c> and friends).</summary>
public static class GgufConfigReader
{
    public static ModelConfig Read(GgufFile gguf) => Read(gguf.TypedMetadata);

    /// <summary>Reads the config from GGUF metadata, of a file or about to be written.</summary>
    public static ModelConfig Read(GgufMetadata gguf)
    {
        InvalidModelFileException Bad(string p) => new(gguf.Source, p);
        string archName = gguf.GetString("general.architecture") ?? throw Bad("missing required key 'general.architecture'");
        var arch = Architecture.FromGgufName(archName)
            ?? throw Bad($"architecture '{archName}' is not supported ({Architecture.SupportedGgufNames})");
        int Required(string key)
        {
            long v = gguf.GetInteger($"{archName}.{key}") ?? throw Bad($"missing required key '{archName}.{key}'");
            if (v <= 0 || v > int.MaxValue) throw Bad($"'{archName}.{key}' = {v} is out of range");
            return (int)v;
        }
        int? Optional(string key)
        {
            long? v = gguf.GetInteger($"{archName}.{key}");
            return v is > 0 and <= int.MaxValue ? (int)v : null;
        }
        int hidden = Required("embedding_length");
        int heads = Required("attention.head_count");
        var embd = gguf.TensorShape(TensorRoles.TokenEmbd.Gguf) ?? throw Bad($"missing tensor '{TensorRoles.TokenEmbd.Gguf}'");
        int vocab = Optional("vocab_size") ?? (gguf.GetArray("tokenizer.ggml.tokens")?.Count) ?? (int)embd[0];

        string? scalingType = gguf.GetString($"{archName}.rope.scaling.type");
        var rope = new RopeConfig
        {
            Theta = gguf.GetFloat($"{archName}.rope.freq_base") ?? 10000.0,
            Interleaved = arch.GgufAdjacentRopePairs,
            Scaling = scalingType == "linear" ? RopeScalingType.Linear : RopeScalingType.None,
            Factor = gguf.GetFloat($"{archName}.rope.scaling.factor") ?? 1.0,
        };
        int layers = Required("block_count");
        int? window = arch.SlidingWindowAlwaysOn || arch.SlidingLayerPeriod is not null ? Optional("attention.sliding_window") : null;
        float? Softcap(string key) => gguf.GetFloat($"{archName}.{key}") is double v && v > 0 ? (float)v : null;
        // LongRoPE (Phi-3): llama.cpp's rope_factors tensors, its attention factor and original context.
        // YaRN (gpt-oss): llama.cpp's magnitude scale is rope.scaling.attn_factor · (1 + 0.1·ln factor).
        if (scalingType == "yarn")
            rope = rope with
            {
                Scaling = RopeScalingType.Yarn,
                OriginalMaxPositions = Optional("rope.scaling.original_context_length") ?? Optional("context_length") ?? 2048,
                AttentionFactor = (gguf.GetFloat($"{archName}.rope.scaling.attn_factor") ?? 1.0)
                    * (rope.Factor > 1 ? 1 + 0.1 * Math.Log(rope.Factor) : 1.0),
                BetaFast = gguf.GetFloat($"{archName}.rope.scaling.yarn_beta_fast") is double fast and > 0 ? fast : 32.0,
                BetaSlow = gguf.GetFloat($"{archName}.rope.scaling.yarn_beta_slow") is double slow and > 0 ? slow : 1.0,
            };
        if (gguf.TensorShape(TensorRoles.RopeFactorsShort.Gguf) is not null || gguf.TensorShape(TensorRoles.RopeFactorsLong.Gguf) is not null)
            rope = rope with
            {
                Scaling = RopeScalingType.LongRope,
                AttentionFactor = gguf.GetFloat($"{archName}.rope.scaling.attn_factor") ?? 1.0,
                OriginalMaxPositions = Optional("rope.scaling.original_context_length") ?? Optional("context_length") ?? 2048,
            };
        long? bos = gguf.GetInteger("tokenizer.ggml.bos_token_id");
        long? eos = gguf.GetInteger("tokenizer.ggml.eos_token_id");
        var eosIds = new List<int>();
        if (eos is >= 0 and < int.MaxValue) eosIds.Add((int)eos);
        long? eot = gguf.GetInteger("tokenizer.ggml.eot_token_id");
        if (eot is >= 0 and < int.MaxValue && !eosIds.Contains((int)eot)) eosIds.Add((int)eot);

        var experts = ReadExperts(gguf, arch, archName, Bad);
        var config = new ModelConfig
        {
            Architecture = arch,
            HiddenSize = hidden,
            IntermediateSize = Optional("feed_forward_length") ?? experts?.FfnSize ?? Required("feed_forward_length"),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = Optional("attention.head_count_kv") ?? heads,
            HeadDim = Optional("attention.key_length") ?? hidden / heads,
            VocabSize = vocab,
            MaxPositions = Optional("context_length") ?? 2048,
            RmsNormEps = (float)(gguf.GetFloat($"{archName}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            Rope = rope,
            Activation = arch.DefaultActivation,
            TiedEmbeddings = gguf.TensorShape(TensorRoles.Output.Gguf) is null,
            SlidingWindow = window,
            AttnLogitSoftcap = Softcap("attn_logit_softcapping"),
            FinalLogitSoftcap = Softcap("final_logit_softcapping"),
            QueryPreAttnScalar = arch.GgufWideQueryScalarLayers == layers ? (double)hidden / heads : null,
            LocalRope = arch.GgufLocalRopeTheta is double local ? new RopeConfig { Theta = local, Interleaved = rope.Interleaved } : null,
            BosTokenId = bos is >= 0 and < int.MaxValue ? (int)bos : null,
            EosTokenIds = eosIds.ToArray(),
            Experts = experts,
        };
        config.Validate(gguf.Source);
        return config;
    }

    /// <summary>
    /// The Mixture-of-Experts keys (llama.cpp's <c>LLM_KV_EXPERT_*</c>); null for a dense model. A family that only
    /// comes with experts must have them; for Llama an expert count of 0 (or none) means dense, as in llama.cpp.
    /// </summary>
    private static ExpertConfig? ReadExperts(GgufMetadata gguf, Architecture arch, string archName, Func<string, InvalidModelFileException> bad)
    {
        long? count = gguf.GetInteger($"{archName}.expert_count");
        if (count is null or 0 && !arch.ExpertsOnly) return null;
        if (count is null) throw bad($"missing required key '{archName}.expert_count'");
        int Key(string key, long? fallback)
        {
            long v = gguf.GetInteger($"{archName}.{key}") ?? fallback ?? throw bad($"missing required key '{archName}.{key}'");
            return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw bad($"'{archName}.{key}' = {v} is out of range");
        }
        long? gating = gguf.GetInteger($"{archName}.expert_gating_func");
        var experts = new ExpertConfig
        {
            Count = count is <= int.MaxValue ? (int)count : throw bad($"'{archName}.expert_count' = {count} is out of range"),
            Used = Key("expert_used_count", null),
            // OLMoE and Mixtral files give each expert's width as feed_forward_length.
            FfnSize = Key("expert_feed_forward_length", gguf.GetInteger($"{archName}.feed_forward_length")),
            SharedFfnSize = arch.Has(TensorRoles.FfnGateShexp) ? Key("expert_shared_feed_forward_length", null) : 0,
            NormalizeWeights = gguf.GetBool($"{archName}.expert_weights_norm") ?? arch.NormalizesExpertWeights,
            WeightsScale = (float)(gguf.GetFloat($"{archName}.expert_weights_scale") is double scale and not 0 ? scale : 1.0),
            // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE: 1 softmax (the default), 2 sigmoid, 3 softmax of the chosen.
            Gating = gating switch
            {
                null or 0 => arch.DefaultExpertGating,
                1 => ExpertGating.Softmax,
                2 => ExpertGating.Sigmoid,
                3 => ExpertGating.SoftmaxWeight,
                _ => throw bad($"'{archName}.expert_gating_func' = {gating} is not a gating function this version knows (1 softmax, 2 sigmoid, 3 softmax of the chosen)"),
            },
            SwigluLimit = gguf.GetFloat($"{archName}.swiglu_limit") is double limit and > 0 ? (float)limit : arch.DefaultSwigluLimit,
        };
        experts.Validate(gguf.Source);
        return experts;
    }
}
