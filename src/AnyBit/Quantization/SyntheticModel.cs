using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Quantization;

/// <summary>
/// Shape of a synthetic model: Llama's by default, or another family's (<see cref="Arch"/>, its GGUF name), with
/// <see cref="Experts"/> experts of width <see cref="Ffn"/> of which <see cref="ExpertsUsed"/> run per token.
/// </summary>
public sealed record SyntheticShape(int Hidden, int Layers, int Heads, int KvHeads, int Ffn, int Vocab, int Context = 4096)
{
    public string Arch { get; init; } = "llama";
    public int Experts { get; init; }
    public int ExpertsUsed { get; init; }
    /// <summary>Per-head width; 0 for hidden / heads.</summary>
    public int HeadDim { get; init; }
    public double RopeTheta { get; init; } = 10000;
    /// <summary>YaRN's factor over <see cref="YarnOriginalContext"/> (gpt-oss); 0 for unscaled RoPE.</summary>
    public double YarnFactor { get; init; }
    public int YarnOriginalContext { get; init; }
    /// <summary>The attention window of the family's sliding layers (gpt-oss: the even ones); null for none.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>The weight format when none is given: a spec, a preset mix, or <see cref="SyntheticModel.Mxfp4Moe"/>.</summary>
    public string DefaultFormat { get; init; } = "f16";

    /// <summary>Presets of realistic shape (hidden, layers, heads, KV heads, FFN, vocabulary, context). The dense
    /// 1B–8B shapes declare Llama 3.x's 128k positions so long-context speed and memory can be measured on them.</summary>
    public static SyntheticShape Preset(string name) => name.ToLowerInvariant() switch
    {
        "tiny" => new SyntheticShape(256, 2, 4, 2, 768, 1024, 512),
        "1b" => new SyntheticShape(2048, 16, 32, 8, 5632, 32000, 131072),
        "3b" => new SyntheticShape(3072, 28, 24, 8, 8192, 32000, 131072),
        "8b" => new SyntheticShape(4096, 32, 32, 8, 14336, 32000, 131072),
        // OLMoE-1B-7B: 64 experts of width 1024, 8 per token.
        "olmoe" => new SyntheticShape(2048, 16, 16, 16, 1024, 50304) { Arch = "olmoe", Experts = 64, ExpertsUsed = 8 },
        "tiny-moe" => new SyntheticShape(256, 2, 4, 2, 256, 1024, 512) { Arch = "qwen3moe", Experts = 8, ExpertsUsed = 2 },
        // gpt-oss-20b (its config.json): 32 experts of width 2880, 4 per token, 64 query and 8 KV heads of 64, a window
        // of 128 on even layers, YaRN factor 32 over 4096 on base 150000 (beta_fast 32, beta_slow 1, the defaults);
        // experts in MXFP4 and the rest as in ggml-org's published GGUF file (llama-quantize's MXFP4_MOE).
        "gpt-oss-20b" => new SyntheticShape(2880, 24, 64, 8, 2880, 201088, 131072)
        {
            Arch = "gpt-oss", Experts = 32, ExpertsUsed = 4, HeadDim = 64, RopeTheta = 150000, YarnFactor = 32, YarnOriginalContext = 4096,
            SlidingWindow = 128, DefaultFormat = SyntheticModel.Mxfp4Moe,
        },
        _ => throw new AnyBitException($"unknown preset '{name}' (tiny, 1b, 3b, 8b, olmoe, tiny-moe, gpt-oss-20b)"),
    };

    /// <summary>The config of the synthetic model, of the family synthetic models have.</summary>
    public ModelConfig ToConfig()
    {
        var family = Architecture.FromGgufName(Arch) ?? throw new AnyBitException($"architecture '{Arch}' is not supported ({Architecture.SupportedGgufNames})");
        var rope = new RopeConfig { Theta = RopeTheta, Interleaved = family.GgufAdjacentRopePairs };
        if (YarnFactor > 0)
            rope = rope with
            {
                // The magnitude scale llama.cpp derives from the factor (rope.scaling.attn_factor 1).
                Scaling = RopeScalingType.Yarn, Factor = YarnFactor, OriginalMaxPositions = YarnOriginalContext,
                AttentionFactor = YarnFactor > 1 ? 1 + 0.1 * Math.Log(YarnFactor) : 1,
            };
        return new()
        {
            Architecture = family, HiddenSize = Hidden, IntermediateSize = Ffn, NumLayers = Layers, NumHeads = Heads,
            NumKvHeads = KvHeads, HeadDim = HeadDim > 0 ? HeadDim : Hidden / Heads, VocabSize = Vocab, MaxPositions = Context, RmsNormEps = 1e-5f,
            Rope = rope, TiedEmbeddings = false, BosTokenId = 1, EosTokenIds = [2], SlidingWindow = SlidingWindow,
            Experts = Experts > 0 || family.ExpertsOnly
                ? new ExpertConfig
                {
                    Count = Experts, Used = ExpertsUsed, FfnSize = Ffn, NormalizeWeights = family.NormalizesExpertWeights,
                    Gating = family.DefaultExpertGating, SwigluLimit = family.DefaultSwigluLimit,
                }
                : null,
        };
    }
}

/// <summary>
/// Writes a Llama-architecture GGUF with seeded random weights (normal, σ = 0.02, the usual initialisation; norms 1)
/// and a synthetic SentencePiece vocabulary (unk, BOS, EOS, the 256 byte tokens, "▁", then "▁t{i}" pieces), so that speed
/// can be measured on realistic shapes without downloading a model. Each tensor is generated, quantized and written
/// on its own, so a 8B model needs memory for one tensor only.
/// </summary>
public static class SyntheticModel
{
    /// <summary>
    /// llama-quantize's MXFP4_MOE (file type 38), the mix of ggml-org's gpt-oss GGUF files: the experts MXFP4, the
    /// other matrices (attention, embedding, head) Q8_0, norms, biases, sinks and routers float32.
    /// </summary>
    public const string Mxfp4Moe = "mxfp4_moe";
    private const uint Mxfp4MoeFileType = 38;

    public static QuantPlan Plan(SyntheticShape shape, string format, ulong seed)
    {
        var c = shape.ToConfig();
        c.Validate("synthetic model");
        bool mxfp4Moe = string.Equals(format.Trim(), Mxfp4Moe, StringComparison.OrdinalIgnoreCase);
        if (mxfp4Moe && c.Experts is null) throw new AnyBitException($"{Mxfp4Moe} is a format for Mixture-of-Experts shapes (give --experts)");
        if (shape.HeadDim == 0 && shape.Hidden % shape.Heads != 0) throw new AnyBitException($"hidden {shape.Hidden} is not a multiple of heads {shape.Heads}");
        if (shape.Vocab < 300) throw new AnyBitException($"vocabulary {shape.Vocab} is too small (at least 300: 3 control + 256 byte tokens)");
        var tensors = new List<PlannedTensor>();
        // The required roles, the feed-forward block (dense or experts), the family's QK-norms and an untied head,
        // in file order, with the shapes the table gives them.
        var feedForward = c.Experts is null ? TensorRoles.DenseFeedForward : TensorRoles.Experts;
        // gpt-oss (the family with attention sinks) files hold every tensor of its table: the sinks and the biases of
        // Q, K, V, O, the router and the experts.
        bool allRoles = c.Architecture.Has(TensorRoles.AttnSinks);
        var roles = c.Architecture.Roles.Where(r => r.Required || r == TensorRoles.Output || feedForward.Contains(r)
            || r == TensorRoles.AttnQNorm || r == TensorRoles.AttnKNorm || (allRoles && r.Kind == TensorKind.Bias)).ToArray();
        var layout = TensorRoles.InFileOrder(roles, shape.Layers).ToList();
        // A preset (q4_k_m) mixes types per tensor as llama-quantize does.
        var mix = QuantPresets.IsPreset(format)
            ? QuantPresets.Choose(format, layout.Where(t => t.Role.IsQuantizable).Select(t => (t.Name, t.Role.Shape(c))), MixModel.Of(c), hasImportance: true)
            : null;
        int index = 0;
        void Add(string name, long[] shapeDims, bool isNorm, bool float32, bool expert)
        {
            long rowLength = shapeDims[^1];
            // Norms and routers stay float32, as llama-quantize keeps them.
            string spec = float32 ? "f32" : mxfp4Moe ? (expert ? "mxfp4" : "q8_0") : mix is not null ? QuantPresets.Spec(mix[name]) : format;
            var f = FormatRegistry.Parse(spec).Bind(rowLength);
            if (f.CheckRowLength(rowLength) is string why) throw new AnyBitException($"{name}: {why}");
            ulong tensorSeed = seed * 1_000_003UL + (ulong)index++;
            long n = TensorTypes.ElementCount(shapeDims);
            tensors.Add(new PlannedTensor(c.Architecture.FileGgufName(name), shapeDims, f, () => isNorm ? Ones(n) : Normal(n, tensorSeed, 0.02f)));
        }
        foreach (var (role, _, name) in layout)
            Add(name, role.Shape(c), role.Kind == TensorKind.Norm, float32: !role.IsQuantizable, expert: role.ExpertsOf is not null);
        return new QuantPlan
        {
            Tensors = tensors,
            WriteMetadata = w =>
            {
                GgufModelMetadata.WriteHyperparameters(w, c, $"anybit-synthetic-{shape.Hidden}x{shape.Layers}");
                if (mxfp4Moe) w.Add("general.file_type", Mxfp4MoeFileType);
                WriteVocabulary(w, shape.Vocab);
            },
        };
    }

    /// <summary>
    /// The synthetic SentencePiece vocabulary llama.cpp tokenizes: unk, BOS, EOS, the 256 byte tokens, "▁", then
    /// <paramref name="filler"/>{i} pieces; <paramref name="addSpacePrefix"/> is written when given.
    /// </summary>
    internal static void WriteVocabulary(GgufWriter w, int vocab, string filler = "▁t", bool? addSpacePrefix = null)
    {
        var tokens = new string[vocab];
        var scores = new float[vocab];
        var types = new int[vocab];
        tokens[0] = "<unk>"; types[0] = 2;
        tokens[1] = "<s>"; types[1] = 3;
        tokens[2] = "</s>"; types[2] = 3;
        for (int b = 0; b < 256; b++) { tokens[3 + b] = $"<0x{b:X2}>"; types[3 + b] = 6; }
        tokens[259] = "▁"; types[259] = 1;
        for (int i = 260; i < vocab; i++) { tokens[i] = $"{filler}{i}"; types[i] = 1; scores[i] = -i; }
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.scores", scores);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.add_bos_token", true);
        if (addSpacePrefix is bool prefix) w.Add("tokenizer.ggml.add_space_prefix", prefix);
    }

    private static float[] Ones(long n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }

    /// <summary>Seeded normal samples (Box–Muller over a splitmix64 stream): the same seed gives the same model
    /// (also the random KV rows of <see cref="Models.InferenceSession.FillRandom"/>).</summary>
    internal static float[] Normal(long n, ulong seed, float sigma)
    {
        var a = GC.AllocateUninitializedArray<float>(checked((int)n));
        ulong state = seed;
        ulong Next()
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
        for (long i = 0; i < n; i += 2)
        {
            double u1 = ((Next() >> 11) + 1.0) / (1UL << 53), u2 = (Next() >> 11) * (1.0 / (1UL << 53));
            double r = Math.Sqrt(-2 * Math.Log(u1)) * sigma;
            a[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < n) a[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return a;
    }
}
