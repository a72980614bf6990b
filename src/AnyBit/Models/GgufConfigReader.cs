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

        var config = new ModelConfig
        {
            Architecture = arch,
            HiddenSize = hidden,
            IntermediateSize = Required("feed_forward_length"),
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
        };
        config.Validate(gguf.Source);
        return config;
    }
}
