using System.Text;
using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Text;

namespace AnyBit.Quantization;

/// <summary>
/// Writes a model's hyperparameters and tokenizer into GGUF metadata with llama.cpp's key names, so that
/// llama.cpp (and AnyBit) load the file: <c>general.architecture</c>, <c>{arch}.embedding_length</c> and friends,
/// and <c>tokenizer.ggml.*</c> (model, tokens, token types, scores or merges, special ids, pre-tokenizer name).
/// </summary>
public static class GgufModelMetadata
{
    /// <summary>The hyperparameters under <paramref name="architecture"/> (default: the name llama.cpp runs the family as).</summary>
    public static void WriteHyperparameters(GgufWriter w, ModelConfig c, string name, string? architecture = null)
    {
        string a = architecture ?? c.Architecture.GgufWriteName;
        w.Add("general.architecture", a);
        w.Add("general.type", "model");
        w.Add("general.name", name);
        w.Add($"{a}.context_length", (uint)c.MaxPositions);
        w.Add($"{a}.embedding_length", (uint)c.HiddenSize);
        w.Add($"{a}.block_count", (uint)c.NumLayers);
        w.Add($"{a}.feed_forward_length", (uint)c.IntermediateSize);
        w.Add($"{a}.attention.head_count", (uint)c.NumHeads);
        w.Add($"{a}.attention.head_count_kv", (uint)c.NumKvHeads);
        w.Add($"{a}.attention.layer_norm_rms_epsilon", c.RmsNormEps);
        w.Add($"{a}.rope.freq_base", (float)c.Rope.Theta);
        w.Add($"{a}.rope.dimension_count", (uint)c.HeadDim);
        w.Add($"{a}.attention.key_length", (uint)c.HeadDim);
        w.Add($"{a}.attention.value_length", (uint)c.HeadDim);
        w.Add($"{a}.vocab_size", (uint)c.VocabSize);
        if (c.Rope.Scaling == RopeScalingType.Linear)
        {
            w.Add($"{a}.rope.scaling.type", "linear");
            w.Add($"{a}.rope.scaling.factor", (float)c.Rope.Factor);
        }
        // Keys of the families that have them, as convert_hf_to_gguf.py writes them.
        if (c.SlidingWindow is int window && Architecture.FromGgufName(a) is { } target && (target.SlidingWindowAlwaysOn || target.SlidingLayerPeriod is not null))
            w.Add($"{a}.attention.sliding_window", (uint)window);
        if (c.AttnLogitSoftcap is float attnCap) w.Add($"{a}.attn_logit_softcapping", attnCap);
        if (c.FinalLogitSoftcap is float finalCap) w.Add($"{a}.final_logit_softcapping", finalCap);
        if (c.Experts is { } e)
        {
            w.Add($"{a}.expert_count", (uint)e.Count);
            w.Add($"{a}.expert_used_count", (uint)e.Used);
            w.Add($"{a}.expert_feed_forward_length", (uint)e.FfnSize);
            if (e.SharedFfnSize > 0) w.Add($"{a}.expert_shared_feed_forward_length", (uint)e.SharedFfnSize);
            // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE (1 softmax, the default, is left out); gpt-oss's clamped SwiGLU.
            if (e.Gating != ExpertGating.Softmax) w.Add($"{a}.expert_gating_func", e.Gating == ExpertGating.Sigmoid ? 2u : 3u);
            if (e.SwigluLimit is float limit) w.Add($"{a}.swiglu_limit", limit);
        }
        if (c.Rope.Scaling == RopeScalingType.Yarn)
        {
            // As convert_hf_to_gguf.py writes gpt-oss's: the factor and original context; llama.cpp derives the magnitude
            // scale 1 + 0.1·ln factor, so an attn_factor key only carries what differs from it, and the correction range
            // only where it is not ggml's default (32, 1).
            w.Add($"{a}.rope.scaling.type", "yarn");
            w.Add($"{a}.rope.scaling.factor", (float)c.Rope.Factor);
            w.Add($"{a}.rope.scaling.original_context_length", (uint)c.Rope.OriginalMaxPositions);
            double derived = c.Rope.Factor > 1 ? 1 + 0.1 * Math.Log(c.Rope.Factor) : 1.0;
            if (Math.Abs(c.Rope.AttentionFactor / derived - 1) > 1e-6) w.Add($"{a}.rope.scaling.attn_factor", (float)(c.Rope.AttentionFactor / derived));
            if (c.Rope.BetaFast != 32.0) w.Add($"{a}.rope.scaling.yarn_beta_fast", (float)c.Rope.BetaFast);
            if (c.Rope.BetaSlow != 1.0) w.Add($"{a}.rope.scaling.yarn_beta_slow", (float)c.Rope.BetaSlow);
        }
        if (c.Rope.Scaling == RopeScalingType.LongRope)
        {
            w.Add($"{a}.rope.scaling.attn_factor", (float)c.Rope.AttentionFactor);
            w.Add($"{a}.rope.scaling.original_context_length", (uint)c.Rope.OriginalMaxPositions);
        }
    }

    /// <summary>The per-frequency divisors llama.cpp stores as rope_freqs.weight for Llama-3 scaling.</summary>
    public static float[] RopeFrequencyFactors(ModelConfig c)
    {
        var plain = Kernels.RotaryEmbedding.InverseFrequencies(c.Rope with { Scaling = RopeScalingType.None }, c.HeadDim);
        var scaled = Kernels.RotaryEmbedding.InverseFrequencies(c.Rope, c.HeadDim);
        return plain.Select((p, i) => p / scaled[i]).ToArray();
    }

    private const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4, TypeByte = 6;

    public static void WriteTokenizer(GgufWriter w, ITokenizer tokenizer, ModelConfig c)
    {
        int n = tokenizer.VocabSize;
        var tokens = new string[n];
        var types = new int[n];
        switch (tokenizer)
        {
            case BpeTokenizer bpe when !bpe.SentencePieceStyle:
            {
                for (int i = 0; i < n; i++) { tokens[i] = bpe.Piece(i); types[i] = TypeNormal; }
                foreach (var a in bpe.AddedTokens) types[a.Id] = a.Special ? TypeControl : TypeUserDefined;
                w.Add("tokenizer.ggml.model", "gpt2");
                w.Add("tokenizer.ggml.pre", bpe.PreTokenizerName);
                w.Add("tokenizer.ggml.tokens", tokens);
                w.Add("tokenizer.ggml.token_type", types);
                w.Add("tokenizer.ggml.merges", bpe.Merges.Select(m => m.Left + " " + m.Right).ToArray());
                w.Add("tokenizer.ggml.add_bos_token", bpe.PrefixIds.Length > 0);
                break;
            }
            case BpeTokenizer spm:
            {
                // SentencePiece-style tokenizer.json: llama.cpp's "llama" vocabulary merges by score, so each
                // merged piece scores minus the rank of the merge that makes it; HF merge order is preserved.
                var scores = new float[n];
                var rank = new Dictionary<string, int>();
                for (int r = 0; r < spm.Merges.Count; r++) rank.TryAdd(spm.Merges[r].Left + spm.Merges[r].Right, r);
                for (int i = 0; i < n; i++)
                {
                    tokens[i] = spm.Piece(i);
                    types[i] = Utf8Chars.IsByteToken(tokens[i], out _) ? TypeByte : TypeNormal;
                    scores[i] = rank.TryGetValue(tokens[i], out int r) ? -r : 0f;
                }
                foreach (var a in spm.AddedTokens) types[a.Id] = a.Special ? TypeControl : TypeUserDefined;
                if (spm.UnkId is int unk) types[unk] = TypeUnknown;
                w.Add("tokenizer.ggml.model", "llama");
                w.Add("tokenizer.ggml.tokens", tokens);
                w.Add("tokenizer.ggml.scores", scores);
                w.Add("tokenizer.ggml.token_type", types);
                w.Add("tokenizer.ggml.add_bos_token", spm.PrefixIds.Length > 0);
                w.Add("tokenizer.ggml.add_space_prefix", true);
                break;
            }
            case ScoredSentencePieceTokenizer sp:
            {
                for (int i = 0; i < n; i++)
                {
                    string piece = sp.Pieces[i];
                    tokens[i] = sp.SpaceSymbol == " " && !sp.IsSpecial(i) ? piece.Replace(" ", "▁") : piece;
                    types[i] = sp.IsSpecial(i) ? TypeControl : Utf8Chars.IsByteToken(piece, out _) ? TypeByte : TypeNormal;
                }
                if (sp.UnkId is int unk) types[unk] = TypeUnknown;
                if (sp.SpaceSymbol == " ")
                {
                    // llama2.c's exporter wrote the control pieces as "\n<s>\n"; give them their SentencePiece names.
                    if (sp.UnkId is int u) tokens[u] = "<unk>";
                    if (sp.BosId is int b) tokens[b] = "<s>";
                    if (sp.EosId is int e) tokens[e] = "</s>";
                }
                w.Add("tokenizer.ggml.model", "llama");
                w.Add("tokenizer.ggml.tokens", tokens);
                w.Add("tokenizer.ggml.scores", sp.Scores.ToArray());
                w.Add("tokenizer.ggml.token_type", types);
                w.Add("tokenizer.ggml.add_bos_token", sp.AddBos);
                w.Add("tokenizer.ggml.add_space_prefix", sp.AddSpacePrefix);
                break;
            }
            default:
                throw new AnyBitException($"cannot write a {tokenizer.Kind} vocabulary into GGUF");
        }
        if (tokenizer.BosId is int bos) w.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        int? eos = tokenizer.EosId ?? (c.EosTokenIds.Length > 0 ? c.EosTokenIds[0] : null);
        if (eos is int e2) w.Add("tokenizer.ggml.eos_token_id", (uint)e2);
        if (tokenizer is ScoredSentencePieceTokenizer { UnkId: int u2 }) w.Add("tokenizer.ggml.unknown_token_id", (uint)u2);
        if (tokenizer is BpeTokenizer { UnkId: int u3 }) w.Add("tokenizer.ggml.unknown_token_id", (uint)u3);
    }
}
