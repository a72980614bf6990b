using System.Text.Json;

namespace AnyBit.Models;

/// <summary>
/// Reads a Hugging Face <c>config.json</c> for the model types of <see cref="Architecture.All"/>, in both the
/// transformers 4 style (<c>rope_theta</c> + <c>rope_scaling</c>) and the transformers 5 style (<c>rope_parameters</c>).
/// The keys are common to every family; what differs (default activation, sliding window) is the descriptor's.
/// </summary>
public static class HfConfigReader
{
    public static ModelConfig Read(string configPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(configPath), new JsonDocumentOptions { MaxDepth = 32, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(configPath, $"not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidModelFileException(configPath, "not a JSON object");
            InvalidModelFileException Bad(string p) => new(configPath, p);

            string modelType = Str(root, "model_type") ?? throw Bad("missing required key 'model_type'");
            var arch = Architecture.FromHfModelType(modelType)
                ?? throw Bad($"model_type '{modelType}' is not supported ({Architecture.SupportedHfModelTypes})");
            int Required(string key) => Int(root, key) ?? throw Bad($"missing required key '{key}'");
            int hidden = Required("hidden_size");
            int heads = Required("num_attention_heads");
            if (heads <= 0) throw Bad($"num_attention_heads {heads} is invalid");
            string? act = Str(root, "hidden_act") ?? Str(root, "hidden_activation");
            var activation = act switch
            {
                null => arch.DefaultActivation,
                "silu" or "swish" => Activation.Silu,
                "relu2" => Activation.ReluSquared,
                "gelu_pytorch_tanh" or "gelu_new" => Activation.GeluTanh,
                _ => throw Bad($"hidden_act '{act}' is not supported (silu, relu2, gelu_pytorch_tanh)"),
            };

            bool slidingUsed = arch.SlidingWindowAlwaysOn || (Bool(root, "use_sliding_window") ?? false);
            int? window = slidingUsed ? Int(root, "sliding_window") : null;

            var experts = ReadExperts(root, arch, Required, Bad);
            var rope = ReadRope(root, Bad);
            float? Softcap(string key) => Num(root, key) is double v && v > 0 ? (float)v : null;
            var config = new ModelConfig
            {
                Architecture = arch,
                HiddenSize = hidden,
                IntermediateSize = Required("intermediate_size"),
                NumLayers = Required("num_hidden_layers"),
                NumHeads = heads,
                NumKvHeads = Int(root, "num_key_value_heads") ?? heads,
                HeadDim = Int(root, "head_dim") ?? hidden / heads,
                VocabSize = Required("vocab_size"),
                MaxPositions = Int(root, "max_position_embeddings") ?? 4096,
                RmsNormEps = (float)(Num(root, "rms_norm_eps") ?? 1e-6),
                Rope = rope,
                Activation = activation,
                TiedEmbeddings = Bool(root, "tie_word_embeddings") ?? false,
                SlidingWindow = window,
                AttnLogitSoftcap = Softcap("attn_logit_softcapping"),
                FinalLogitSoftcap = Softcap("final_logit_softcapping"),
                QueryPreAttnScalar = Num(root, "query_pre_attn_scalar"),
                // Gemma 3's sliding-window layers rotate with their own base and no scaling.
                LocalRope = Num(root, "rope_local_base_freq") is double local ? new RopeConfig { Theta = local } : null,
                BosTokenId = Int(root, "bos_token_id"),
                EosTokenIds = IntOrList(root, "eos_token_id"),
                Experts = experts,
            };
            config.Validate(configPath);
            return config;
        }
    }

    /// <summary>
    /// The Mixture-of-Experts keys as transformers names them (Mixtral's <c>num_local_experts</c>, the Qwen MoE and
    /// OLMoE <c>num_experts</c>); null for a dense family. Without <c>norm_topk_prob</c> the family's llama.cpp choice
    /// applies (published Qwen3-MoE configs set it; Mixtral's code always renormalizes and has no key).
    /// </summary>
    private static ExpertConfig? ReadExperts(JsonElement root, Architecture arch, Func<string, int> required, Func<string, InvalidModelFileException> bad)
    {
        if (!arch.ExpertsOnly) return null;
        // Qwen's MoE configs can make some layers dense; llama.cpp's graphs (and AnyBit's) have experts in every layer.
        if (Int(root, "decoder_sparse_step") is int step && step != 1
            || root.TryGetProperty("mlp_only_layers", out var dense) && dense.ValueKind == JsonValueKind.Array && dense.GetArrayLength() > 0)
            throw bad("dense layers among the expert layers (decoder_sparse_step, mlp_only_layers) are not supported");
        int count = Int(root, "num_local_experts") ?? required("num_experts");
        return new ExpertConfig
        {
            Count = count,
            Used = required("num_experts_per_tok"),
            FfnSize = Int(root, "moe_intermediate_size") ?? required("intermediate_size"),
            SharedFfnSize = arch.Has(TensorRoles.FfnGateShexp) ? required("shared_expert_intermediate_size") : 0,
            NormalizeWeights = Bool(root, "norm_topk_prob") ?? arch.NormalizesExpertWeights,
            Gating = arch.DefaultExpertGating,
            SwigluLimit = arch.DefaultSwigluLimit is null ? null : Num(root, "swiglu_limit") is double limit ? (float)limit : arch.DefaultSwigluLimit,
        };
    }

    private static RopeConfig ReadRope(JsonElement root, Func<string, InvalidModelFileException> bad)
    {
        // transformers 5 keeps theta and scaling together in rope_parameters; transformers 4 has rope_theta at the
        // top level and the scaling (or null) in rope_scaling.
        JsonElement? scaling = null;
        double theta = Num(root, "rope_theta") ?? 10000.0;
        if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object)
        {
            theta = Num(rp, "rope_theta") ?? theta;
            scaling = rp;
        }
        else if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            scaling = rs;
        }
        if (scaling is null) return new RopeConfig { Theta = theta };
        var s = scaling.Value;
        string type = Str(s, "rope_type") ?? Str(s, "type") ?? "default";
        return type switch
        {
            "default" => new RopeConfig { Theta = theta },
            "linear" => new RopeConfig { Theta = theta, Scaling = RopeScalingType.Linear, Factor = Num(s, "factor") ?? throw bad("linear rope scaling without 'factor'") },
            "llama3" => new RopeConfig
            {
                Theta = theta,
                Scaling = RopeScalingType.Llama3,
                Factor = Num(s, "factor") ?? throw bad("llama3 rope scaling without 'factor'"),
                LowFreqFactor = Num(s, "low_freq_factor") ?? throw bad("llama3 rope scaling without 'low_freq_factor'"),
                HighFreqFactor = Num(s, "high_freq_factor") ?? throw bad("llama3 rope scaling without 'high_freq_factor'"),
                OriginalMaxPositions = Int(s, "original_max_position_embeddings") ?? throw bad("llama3 rope scaling without 'original_max_position_embeddings'"),
            },
            "longrope" or "su" => LongRope(root, s, theta, bad),
            "yarn" => Yarn(root, s, theta, bad),
            _ => throw bad($"rope type '{type}' is not supported (default, linear, llama3, longrope, yarn)"),
        };
    }

    /// <summary>
    /// Phi-3's LongRoPE as transformers computes it: short and long divisors, and the attention factor
    /// √(1 + ln(s)/ln(original)) with s = max_position_embeddings / original_max_position_embeddings (unless given).
    /// </summary>
    private static RopeConfig LongRope(JsonElement root, JsonElement s, double theta, Func<string, InvalidModelFileException> bad)
    {
        float[] Factors(string key) => s.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Array
            && v.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number)
            ? v.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray()
            : throw bad($"longrope rope scaling without a '{key}' list");
        int maxPositions = Int(root, "max_position_embeddings") ?? 4096;
        int original = Int(root, "original_max_position_embeddings") ?? Int(s, "original_max_position_embeddings") ?? maxPositions;
        // transformers takes the scale from the two lengths when the config has the original one at the top level.
        double scale = Int(root, "original_max_position_embeddings") is not null ? (double)maxPositions / original : Num(s, "factor") ?? (double)maxPositions / original;
        double attention = Num(s, "attention_factor") ?? (scale <= 1 ? 1.0 : Math.Sqrt(1 + Math.Log(scale) / Math.Log(original)));
        return new RopeConfig
        {
            Theta = theta, Scaling = RopeScalingType.LongRope, ShortFactors = Factors("short_factor"), LongFactors = Factors("long_factor"),
            OriginalMaxPositions = original, AttentionFactor = attention, Factor = scale,
        };
    }

    /// <summary>
    /// YaRN as transformers' <c>_compute_yarn_parameters</c> reads it: the factor, the original context, the
    /// correction range (beta_fast, beta_slow, truncate) and the magnitude scale (attention_factor, else
    /// 0.1·ln(factor) + 1, or the ratio of the mscale and mscale_all_dim forms where both are given).
    /// </summary>
    private static RopeConfig Yarn(JsonElement root, JsonElement s, double theta, Func<string, InvalidModelFileException> bad)
    {
        double factor = Num(s, "factor") ?? throw bad("yarn rope scaling without 'factor'");
        static double MScale(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
        double attention = Num(s, "attention_factor")
            ?? (Num(s, "mscale") is double m && Num(s, "mscale_all_dim") is double all ? MScale(factor, m) / MScale(factor, all) : MScale(factor, 1));
        return new RopeConfig
        {
            Theta = theta, Scaling = RopeScalingType.Yarn, Factor = factor, AttentionFactor = attention,
            OriginalMaxPositions = Int(s, "original_max_position_embeddings") ?? Int(root, "max_position_embeddings") ?? 4096,
            BetaFast = Num(s, "beta_fast") ?? 32.0, BetaSlow = Num(s, "beta_slow") ?? 1.0, YarnTruncate = Bool(s, "truncate") ?? true,
        };
    }

    private static string? Str(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static double? Num(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static int? Int(JsonElement e, string key)
    {
        if (!e.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.Number) return null;
        if (v.TryGetInt32(out int i)) return i;
        double d = v.GetDouble();
        return d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue ? (int)d : null;
    }

    private static bool? Bool(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static int[] IntOrList(JsonElement e, string key)
    {
        if (!e.TryGetProperty(key, out var v)) return [];
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return [i];
        if (v.ValueKind == JsonValueKind.Array)
            return v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out _)).Select(x => x.GetInt32()).ToArray();
        return [];
    }
}
