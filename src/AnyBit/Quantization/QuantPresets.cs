using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Quantization;

/// <summary>
/// What llama-quantize's per-tensor choice reads about a model (llama_tensor_get_type): layers, heads (n_gqa), experts,
/// whether it is Falcon, and whether llama.cpp calls it a 70B (LLM_TYPE_70B).
/// </summary>
public sealed record MixModel(int Layers, int Heads, int KvHeads, int Experts = 0, bool Falcon = false, bool Is70B = false)
{
    /// <summary>llama_hparams::n_gqa: query heads per key/value head (integer division), 0 without key/value heads.</summary>
    public int Gqa => KvHeads == 0 ? 0 : Heads / KvHeads;

    /// <summary>The facts of a model AnyBit runs (dense, never Falcon). LLM_TYPE_70B as llama-model.cpp sets it for the
    /// architectures AnyBit has: llama with 80 layers and grouped keys/values, qwen2 with 80 layers.</summary>
    public static MixModel Of(ModelConfig c) => new(c.NumLayers, c.NumHeads, c.NumKvHeads, c.Experts?.Count ?? 0,
        Is70B: c.NumLayers == 80 && c.Architecture.GgufWriteName switch
        {
            "llama" => c.NumHeads != c.NumKvHeads,
            "qwen2" => true,
            _ => false,
        });
}

/// <summary>
/// llama.cpp's mixes (llama-quantize's file types) as presets: which ggml type each tensor gets, ported from
/// llama-quant.cpp's <c>llama_tensor_get_type</c> (llama.cpp c392e50) with its fallback for rows that are not a whole
/// number of blocks, the file type written as <c>general.file_type</c>, and llama-quantize's refusals without an
/// importance matrix. A preset is named after llama-quantize's type in lower case. The i-quant names (iq2_xxs, iq4_xs,
/// ...) are the mixes when a whole model is quantized, as in llama-quantize, since nobody ships those types pure;
/// <c>--pure</c> (llama-quantize's flag) gives every matrix the one type, and per-tensor overrides always mean the type.
/// The names of older types that AnyBit has always quantized pure keep that meaning (q2_k, q4_0, iq4_nl), and their
/// mixes take a "_mix" suffix (q2_k_mix is llama-quantize's Q2_K, iq4_nl_mix its IQ4_NL).
/// </summary>
public static class QuantPresets
{
    /// <summary>llama.cpp's LLAMA_FTYPE_MOSTLY_* (llama.h): the values are the file types.</summary>
    private enum Ftype : uint
    {
        Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17,
        IQ2_XXS = 19, IQ2_XS = 20, Q2_K_S = 21, IQ3_XS = 22, IQ3_XXS = 23, IQ1_S = 24, IQ4_NL = 25, IQ3_S = 26, IQ3_M = 27,
        IQ2_S = 28, IQ2_M = 29, IQ4_XS = 30, IQ1_M = 31,
    }

    /// <summary>
    /// One mix: its AnyBit name, llama.cpp's file type, the type its tensors start from (llama_model_quantize_impl's
    /// default_type), and whether llama-quantize refuses it outright without an importance matrix (quantize.cpp's
    /// "Please do not use IQ1_S, IQ1_M, IQ2_S, IQ2_XXS, IQ2_XS or Q2_K_S quantization without an importance matrix").
    /// </summary>
    private sealed record Mix(string Name, Ftype Ftype, TensorType Default, bool RefusedWithoutImportance = false);

    private static readonly Mix[] Mixes =
    [
        new("q2_k_mix", Ftype.Q2_K, TensorType.Q2_K),
        new("q2_k_s", Ftype.Q2_K_S, TensorType.Q2_K, RefusedWithoutImportance: true),
        new("q3_k_s", Ftype.Q3_K_S, TensorType.Q3_K),
        new("q3_k_m", Ftype.Q3_K_M, TensorType.Q3_K),
        new("q3_k_l", Ftype.Q3_K_L, TensorType.Q3_K),
        new("q4_k_s", Ftype.Q4_K_S, TensorType.Q4_K),
        new("q4_k_m", Ftype.Q4_K_M, TensorType.Q4_K),
        new("q5_k_s", Ftype.Q5_K_S, TensorType.Q5_K),
        new("q5_k_m", Ftype.Q5_K_M, TensorType.Q5_K),
        new("iq1_s", Ftype.IQ1_S, TensorType.IQ1_S, RefusedWithoutImportance: true),
        new("iq1_m", Ftype.IQ1_M, TensorType.IQ1_M, RefusedWithoutImportance: true),
        new("iq2_xxs", Ftype.IQ2_XXS, TensorType.IQ2_XXS, RefusedWithoutImportance: true),
        new("iq2_xs", Ftype.IQ2_XS, TensorType.IQ2_XS, RefusedWithoutImportance: true),
        new("iq2_s", Ftype.IQ2_S, TensorType.IQ2_XS, RefusedWithoutImportance: true), // IQ2_S the mix is mostly IQ2_XS
        new("iq2_m", Ftype.IQ2_M, TensorType.IQ2_S),
        new("iq3_xxs", Ftype.IQ3_XXS, TensorType.IQ3_XXS),
        new("iq3_xs", Ftype.IQ3_XS, TensorType.IQ3_S),
        new("iq3_s", Ftype.IQ3_S, TensorType.IQ3_S),
        new("iq3_m", Ftype.IQ3_M, TensorType.IQ3_S),
        new("iq4_nl_mix", Ftype.IQ4_NL, TensorType.IQ4_NL),
        new("iq4_xs", Ftype.IQ4_XS, TensorType.IQ4_XS),
    ];

    public static readonly string[] Names = Mixes.Select(m => m.Name).ToArray();

    private static Mix? Find(string spec)
    {
        string s = spec.Trim().ToLowerInvariant();
        return Mixes.FirstOrDefault(m => m.Name == s);
    }

    private static Mix Get(string preset) => Find(preset) ?? throw new AnyBitException($"unknown preset '{preset}' ({string.Join(", ", Names)})");

    public static bool IsPreset(string spec) => Find(spec) is not null;

    /// <summary>
    /// What <paramref name="spec"/> is with llama-quantize's <c>--pure</c>: the ggml type it names, or the type a mix
    /// starts from (q4_k_m: q4_k; llama-quantize gives IQ2_XS for IQ2_S's mix, but iq2_s is a type's name here).
    /// </summary>
    public static string PureSpec(string spec) =>
        ModelQuantizer.GgmlTypeOf(spec) is not null || Find(spec) is not { } mix ? spec : Spec(mix.Default);

    /// <summary>llama-quantize's name of a preset's mix ("IQ2_XXS" for iq2_xxs).</summary>
    public static string LlamaName(string preset) => Get(preset).Ftype.ToString();

    /// <summary>The file type (<c>general.file_type</c>) of a file quantized with <paramref name="spec"/> (a ggml type or a preset); null where llama.cpp has none.</summary>
    public static uint? FileType(string spec) =>
        Find(spec) is { } mix ? (uint)mix.Ftype : Formats.FormatTable.ByName(spec)?.FileType;

    /// <summary>
    /// True when llama-quantize refuses <paramref name="spec"/> without an importance matrix before it starts: the
    /// presets quantize.cpp names, and a single ggml type that llama-quant.cpp refuses for every tensor
    /// (<see cref="NeedsImportance"/>).
    /// </summary>
    public static bool RefusedWithoutImportance(string spec) =>
        Find(spec) is { } mix ? mix.RefusedWithoutImportance
        : Enum.TryParse<TensorType>(spec.Trim(), ignoreCase: true, out var type) && NeedsImportance(type, "", null);

    /// <summary>What to do without an importance matrix.</summary>
    public const string ImportanceRemedy = "pass --imatrix FILE (from 'anybit imatrix' or llama-imatrix), or calibrate (--method gptq or awq, --target-bpw)";

    /// <summary>The one-line refusal of <see cref="RefusedWithoutImportance"/>.</summary>
    public static string ImportanceRefusal(string spec) =>
        $"{spec.Trim().ToLowerInvariant()} needs an importance matrix: {ImportanceRemedy}; llama.cpp refuses IQ1_S, IQ1_M, IQ2_S, IQ2_XXS, IQ2_XS and Q2_K_S without one";

    /// <summary>
    /// llama-quant.cpp's per-tensor refusal ("Missing importance matrix for tensor … in a very low-bit quantization"):
    /// true when a tensor stored as <paramref name="type"/> needs an importance matrix. IQ1_M spares token_embd and
    /// output; Q2_K needs one only in llama-quantize's Q2_K_S mix, and not for token_embd.
    /// </summary>
    public static bool NeedsImportance(TensorType type, string tensor, string? preset) =>
        type is TensorType.IQ2_XXS or TensorType.IQ2_XS or TensorType.IQ2_S or TensorType.IQ1_S
        || (type == TensorType.IQ1_M && tensor != "token_embd.weight" && tensor != "output.weight")
        || (type == TensorType.Q2_K && preset is not null && Find(preset)?.Ftype == Ftype.Q2_K_S && tensor != "token_embd.weight");

    /// <summary>The spec of a ggml type: its name in lower case ("iq2_xxs"), whether or not this build has its row yet.</summary>
    public static string Spec(TensorType type) => type.ToString().ToLowerInvariant();

    /// <summary>
    /// The type llama-quantize gives each tensor of <paramref name="tensors"/> (the model's weight matrices, by GGUF
    /// name and shape, innermost dimension last) in a preset's mix. <paramref name="hasImportance"/> is llama.cpp's
    /// has_imatrix, which some mixes read. Tensors are visited in llama.cpp's order (layer, then name), as its counters
    /// of attn_v and ffn_down tensors depend on it.
    /// </summary>
    public static Dictionary<string, TensorType> Choose(string preset, IEnumerable<(string Name, long[] Shape)> tensors, MixModel model, bool hasImportance)
    {
        var mix = Get(preset);
        var list = tensors.OrderBy(t => t.Name, LlamaOrder.Instance).ToList();
        var qs = new State
        {
            HasImportance = hasImportance,
            HasOutput = list.Any(t => t.Name == "output.weight"),
            NAttentionWv = list.Count(t => t.Name.Contains("attn_v.weight") || t.Name.Contains("attn_qkv.weight") || t.Name.Contains("attn_kv_b.weight")),
            NFfnDown = model.Layers, NFfnGate = model.Layers, NFfnUp = model.Layers,
        };
        var result = new Dictionary<string, TensorType>();
        foreach (var (name, shape) in list)
            result[name] = GetType(qs, mix.Default, name, shape[^1], model, mix.Ftype);
        return result;
    }

    /// <summary>quantize_state_impl: the counters llama_tensor_get_type keeps across tensors.</summary>
    private sealed class State
    {
        public int NAttentionWv, NFfnDown, NFfnGate, NFfnUp;
        public int IAttentionWv, IFfnDown, IFfnGate, IFfnUp;
        public bool HasImportance, HasOutput;
    }

    /// <summary>llama_model_loader's weight_name_comparer: by the layer of "blk.%d." (-1 for others), then by name.</summary>
    private sealed class LlamaOrder : IComparer<string>
    {
        public static readonly LlamaOrder Instance = new();

        public int Compare(string? a, string? b)
        {
            int la = Layer(a!) ?? -1, lb = Layer(b!) ?? -1;
            return la != lb ? la.CompareTo(lb) : string.CompareOrdinal(a, b);
        }
    }

    /// <summary>sscanf(name, "blk.%d.", &amp;layer): the number after "blk.", or null.</summary>
    private static int? Layer(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return null;
        int i = 4, sign = 1;
        if (i < name.Length && name[i] is '+' or '-') { sign = name[i] == '-' ? -1 : 1; i++; }
        int start = i;
        long value = 0;
        while (i < name.Length && char.IsAsciiDigit(name[i]) && value <= int.MaxValue) value = value * 10 + (name[i++] - '0');
        return i == start || value > int.MaxValue ? null : sign * (int)value;
    }

    private static int BlockSize(TensorType type) => TensorTypes.Traits(type).BlockSize;

    /// <summary>
    /// llama_tensor_get_type, rule for rule (its comments kept where they say why). <paramref name="nx"/> is the row
    /// length (ne[0]).
    /// </summary>
    private static TensorType GetType(State qs, TensorType newType, string name, long nx, MixModel model, Ftype ftype)
    {
        static bool UseMoreBits(int iLayer, int nLayers) =>
            iLayer < nLayers / 8 || iLayer >= 7 * nLayers / 8 || (iLayer - nLayers / 8) % 3 == 2;
        int nExpert = Math.Max(1, model.Experts);
        (int, int) LayerInfo(int iLayer, int nLayer)
        {
            if (nExpert > 1)
            {
                // Experts of Mixtral-8x7B are not consecutive, so the layer comes from the tensor's name.
                iLayer = Layer(name) ?? throw new AnyBitException($"Failed to determine layer for tensor {name}");
                if (iLayer < 0 || iLayer >= nLayer) throw new AnyBitException($"Bad layer {iLayer} for tensor {name}. Must be in [0, {nLayer})");
            }
            return (iLayer, nLayer);
        }
        bool falcon = model.Falcon;
        int gqa = model.Gqa;

        // For architectures that share the token embeddings with the output, the embeddings get the output's type.
        if (name == "output.weight" || (!qs.HasOutput && name == "token_embd.weight"))
        {
            long qkK = BlockSize(newType);
            if (falcon || nx % qkK != 0) newType = TensorType.Q8_0;
            else if (ftype is Ftype.IQ2_XXS or Ftype.IQ2_XS or Ftype.IQ3_XXS or Ftype.IQ1_S or Ftype.IQ2_S or Ftype.IQ2_M or Ftype.IQ1_M)
                newType = TensorType.Q5_K;
            else if (newType != TensorType.Q8_0) newType = TensorType.Q6_K;
        }
        else if (name == "token_embd.weight")
        {
            if (ftype is Ftype.IQ2_XXS or Ftype.IQ2_XS or Ftype.IQ1_S or Ftype.IQ1_M) newType = TensorType.Q2_K;
            else if (ftype is Ftype.IQ2_S or Ftype.IQ2_M) newType = TensorType.IQ3_S;
            else if (ftype == Ftype.IQ3_XXS) newType = TensorType.IQ3_S;
            // (TQ1_0 and TQ2_0 give Q4_K here; AnyBit's ternary formats are not presets.)
        }
        else if (ftype is Ftype.IQ2_XXS or Ftype.IQ2_XS or Ftype.IQ1_S or Ftype.IQ2_S or Ftype.IQ2_M or Ftype.IQ1_M)
        {
            bool iq2sOrM = ftype is Ftype.IQ2_S or Ftype.IQ2_M;
            if (name.Contains("attn_v.weight"))
            {
                if (gqa >= 4 || model.Experts >= 4) newType = TensorType.Q4_K;
                else newType = iq2sOrM ? TensorType.IQ3_S : TensorType.Q2_K;
                ++qs.IAttentionWv;
            }
            else if (model.Experts == 8 && name.Contains("attn_k.weight")) newType = TensorType.Q4_K;
            else if (name.Contains("ffn_down"))
            {
                if (qs.IFfnDown < qs.NFfnDown / 8) newType = iq2sOrM ? TensorType.IQ3_S : TensorType.Q2_K;
                ++qs.IFfnDown;
            }
            else if (name.Contains("attn_output.weight"))
            {
                if (model.Experts == 8) newType = TensorType.Q5_K;
                else if (ftype is Ftype.IQ1_S or Ftype.IQ1_M) newType = TensorType.IQ2_XXS;
                else if (iq2sOrM) newType = TensorType.IQ3_S;
            }
        }
        else if (name.Contains("attn_v.weight"))
        {
            if (ftype == Ftype.Q2_K) newType = gqa >= 4 ? TensorType.Q4_K : TensorType.Q3_K;
            else if (ftype == Ftype.Q2_K_S && gqa >= 4) newType = TensorType.Q4_K;
            else if (ftype == Ftype.IQ3_XXS) newType = gqa >= 4 ? TensorType.Q4_K : !qs.HasImportance ? TensorType.IQ3_S : TensorType.IQ3_XXS;
            else if (ftype is Ftype.IQ3_XS or Ftype.IQ3_S && gqa >= 4) newType = TensorType.Q4_K;
            else if (ftype == Ftype.IQ3_M) newType = TensorType.Q4_K;
            else if (ftype == Ftype.Q3_K_M) newType = qs.IAttentionWv < 2 ? TensorType.Q5_K : TensorType.Q4_K;
            else if (ftype == Ftype.Q3_K_L) newType = TensorType.Q5_K;
            else if (ftype is Ftype.IQ4_NL or Ftype.IQ4_XS && gqa >= 4) newType = TensorType.Q5_K;
            else if (ftype is Ftype.Q4_K_M or Ftype.Q5_K_M && UseMoreBits(qs.IAttentionWv, qs.NAttentionWv)) newType = TensorType.Q6_K;
            else if (ftype == Ftype.Q4_K_S && qs.IAttentionWv < 4) newType = TensorType.Q5_K;
            // In the 70B model 8 heads share the same attn_v weights, so attn_v is 8x smaller than attn_q: more bits
            // there cost almost nothing in size.
            if (model.Is70B && newType is TensorType.Q3_K or TensorType.Q4_K) newType = TensorType.Q5_K;
            // For the 8-expert model, bumping this to Q8_0 trades just ~128MB.
            if (model.Experts == 8) newType = TensorType.Q8_0;
            ++qs.IAttentionWv;
        }
        else if (name.Contains("attn_k.weight"))
        {
            if (model.Experts == 8) newType = TensorType.Q8_0;
            else if (ftype == Ftype.IQ3_XS) newType = TensorType.IQ3_XXS;
            else if (ftype == Ftype.IQ3_XXS) newType = TensorType.IQ2_S;
        }
        else if (name.Contains("attn_q.weight"))
        {
            if (ftype == Ftype.IQ3_XS) newType = TensorType.IQ3_XXS;
            else if (ftype == Ftype.IQ3_XXS) newType = TensorType.IQ2_S;
        }
        else if (name.Contains("ffn_down"))
        {
            var (iLayer, nLayer) = LayerInfo(qs.IFfnDown, qs.NFfnDown);
            if (ftype == Ftype.Q2_K) newType = TensorType.Q3_K;
            else if (ftype == Ftype.Q2_K_S)
            {
                if (iLayer < nLayer / 8) newType = TensorType.Q4_K;
            }
            else if (ftype == Ftype.IQ3_XXS && !qs.HasImportance) newType = iLayer < nLayer / 8 ? TensorType.Q4_K : TensorType.Q3_K;
            else if (ftype == Ftype.Q3_K_M)
                newType = iLayer < nLayer / 16 ? TensorType.Q5_K
                    : !falcon || UseMoreBits(iLayer, nLayer) ? TensorType.Q4_K
                    : TensorType.Q3_K;
            else if (ftype == Ftype.IQ3_M && (iLayer < nLayer / 8 || (model.Experts == 8 && UseMoreBits(iLayer, nLayer)))) newType = TensorType.Q4_K;
            else if (ftype == Ftype.Q3_K_L) newType = falcon ? TensorType.Q4_K : TensorType.Q5_K;
            else if (ftype == Ftype.Q4_K_M)
            {
                if (falcon) newType = iLayer < nLayer / 16 ? TensorType.Q6_K : UseMoreBits(iLayer, nLayer) ? TensorType.Q5_K : TensorType.Q4_K;
                else if (UseMoreBits(iLayer, nLayer)) newType = TensorType.Q6_K;
            }
            else if (iLayer < nLayer / 8 && ftype is Ftype.IQ4_NL or Ftype.IQ4_XS && !qs.HasImportance) newType = TensorType.Q5_K;
            else if (ftype == Ftype.Q5_K_M && UseMoreBits(iLayer, nLayer)) newType = TensorType.Q6_K;
            else if (ftype == Ftype.Q4_K_S && !falcon && iLayer < nLayer / 8) newType = TensorType.Q5_K;
            // (Q4_0 and Q5_0 move the first eighth to Q4_1/Q5_1 with an imatrix; those mixes are not presets.)
            ++qs.IFfnDown;
        }
        else if (name.Contains("attn_output.weight"))
        {
            if (!falcon)
            {
                if (model.Experts == 8)
                {
                    if (ftype is Ftype.Q2_K or Ftype.IQ3_XS or Ftype.IQ3_XXS or Ftype.Q3_K_S or Ftype.Q3_K_M or Ftype.IQ4_NL
                        or Ftype.Q4_K_S or Ftype.Q4_K_M or Ftype.IQ3_S or Ftype.IQ3_M or Ftype.IQ4_XS)
                        newType = TensorType.Q5_K;
                }
                else if (ftype == Ftype.Q2_K) newType = TensorType.Q3_K;
                else if (ftype == Ftype.IQ3_XXS) newType = TensorType.IQ3_S;
                else if (ftype == Ftype.Q3_K_M) newType = TensorType.Q4_K;
                else if (ftype == Ftype.Q3_K_L) newType = TensorType.Q5_K;
                else if (ftype == Ftype.IQ3_M) newType = TensorType.Q4_K;
            }
            else if (ftype == Ftype.Q3_K_L) newType = TensorType.Q4_K;
        }
        else if (name.Contains("attn_qkv.weight"))
        {
            if (ftype is Ftype.Q3_K_M or Ftype.Q3_K_L or Ftype.IQ3_M) newType = TensorType.Q4_K;
            else if (ftype == Ftype.Q4_K_M) newType = TensorType.Q5_K;
            else if (ftype == Ftype.Q5_K_M) newType = TensorType.Q6_K;
        }
        else if (name.Contains("ffn_gate"))
        {
            var (iLayer, nLayer) = LayerInfo(qs.IFfnGate, qs.NFfnGate);
            if (ftype == Ftype.IQ3_XS && iLayer >= nLayer / 8 && iLayer < 7 * nLayer / 8) newType = TensorType.IQ3_XXS;
            ++qs.IFfnGate;
        }
        else if (name.Contains("ffn_up"))
        {
            var (iLayer, nLayer) = LayerInfo(qs.IFfnUp, qs.NFfnUp);
            if (ftype == Ftype.IQ3_XS && iLayer >= nLayer / 8 && iLayer < 7 * nLayer / 8) newType = TensorType.IQ3_XXS;
            ++qs.IFfnUp;
        }

        // Rows that are not a whole number of the chosen type's blocks fall back to a type with 32-wide blocks, and
        // to F16 when even those do not fit.
        if (nx % BlockSize(newType) != 0)
        {
            newType = newType switch
            {
                TensorType.TQ1_0 or TensorType.TQ2_0 => TensorType.Q4_0,
                TensorType.IQ2_XXS or TensorType.IQ2_XS or TensorType.IQ2_S or TensorType.IQ3_XXS or TensorType.IQ3_S
                    or TensorType.IQ1_S or TensorType.IQ1_M or TensorType.Q2_K or TensorType.Q3_K or TensorType.IQ4_XS => TensorType.IQ4_NL,
                TensorType.Q4_K => TensorType.Q5_0,
                TensorType.Q5_K => TensorType.Q5_1,
                TensorType.Q6_K => TensorType.Q8_0,
                _ => throw new AnyBitException($"{name}: rows of {nx} fit no type of llama.cpp's {ftype} mix (Unsupported tensor size encountered)"),
            };
            if (nx % BlockSize(newType) != 0) newType = TensorType.F16;
        }
        return newType;
    }
}
