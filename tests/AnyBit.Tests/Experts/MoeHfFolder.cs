using System.Text.Json;
using AnyBit.IO;

namespace AnyBit.Tests.Experts;

/// <summary>
/// Writes a tiny Mixture-of-Experts GGUF as a Hugging Face folder, with transformers' tensor names and config keys
/// for each family (spelled out here, independent of AnyBit's role table): per-expert tensors, Mixtral's
/// <c>block_sparse_moe</c> names, Qwen2-MoE's shared expert, and llama's Q/K rows back in the halves order that
/// convert_hf_to_gguf.py permutes into adjacent pairs.
/// </summary>
internal static class MoeHfFolder
{
    public static void Write(string gguf, string folder)
    {
        Directory.CreateDirectory(folder);
        using var g = GgufFile.Open(gguf);
        string arch = g.GetString("general.architecture")!;
        int Key(string k) => (int)g.GetInteger($"{arch}.{k}")!;
        int d = Key("embedding_length"), heads = Key("attention.head_count"), kvHeads = Key("attention.head_count_kv"), layers = Key("block_count");
        int hd = Key("attention.key_length"), experts = Key("expert_count");
        if (arch == "gpt-oss")
        {
            WriteGptOss(g, folder, d, heads, kvHeads, layers, hd, experts);
            return;
        }
        bool mixtral = arch == "llama";
        var st = new SafetensorsWriter();
        float[] T(string name) => g.Find(name)!.ToFloat32();
        long[] Shape(string name) => g.Find(name)!.Shape;
        void Put(string hf, string name) => st.Add(hf, Shape(name), T(name));
        // llama.cpp's llama graph reads Q/K rows in adjacent pairs; transformers' in halves.
        float[] Halves(float[] rows, int h, int rowLength)
        {
            int hdim = rows.Length / rowLength / h, half = hdim / 2;
            var r = new float[rows.Length];
            for (int head = 0; head < h; head++)
                for (int i = 0; i < half; i++)
                    for (int part = 0; part < 2; part++)
                        Array.Copy(rows, (long)(head * hdim + 2 * i + part) * rowLength, r, (long)(head * hdim + part * half + i) * rowLength, rowLength);
            return r;
        }

        Put("model.embed_tokens.weight", "token_embd.weight");
        Put("model.norm.weight", "output_norm.weight");
        Put("lm_head.weight", "output.weight");
        for (int l = 0; l < layers; l++)
        {
            string b = $"blk.{l}.", m = $"model.layers.{l}.";
            Put(m + "input_layernorm.weight", b + "attn_norm.weight");
            Put(m + "post_attention_layernorm.weight", b + "ffn_norm.weight");
            st.Add(m + "self_attn.q_proj.weight", Shape(b + "attn_q.weight"), mixtral ? Halves(T(b + "attn_q.weight"), heads, d) : T(b + "attn_q.weight"));
            st.Add(m + "self_attn.k_proj.weight", Shape(b + "attn_k.weight"), mixtral ? Halves(T(b + "attn_k.weight"), kvHeads, d) : T(b + "attn_k.weight"));
            Put(m + "self_attn.v_proj.weight", b + "attn_v.weight");
            Put(m + "self_attn.o_proj.weight", b + "attn_output.weight");
            foreach (var (gg, hf) in new[] { ("attn_q.bias", "self_attn.q_proj.bias"), ("attn_k.bias", "self_attn.k_proj.bias"), ("attn_v.bias", "self_attn.v_proj.bias"),
                         ("attn_q_norm.weight", "self_attn.q_norm.weight"), ("attn_k_norm.weight", "self_attn.k_norm.weight") })
                if (g.Find(b + gg) is not null) Put(m + hf, b + gg);
            string moe = mixtral ? m + "block_sparse_moe." : m + "mlp.";
            Put(moe + "gate.weight", b + "ffn_gate_inp.weight");
            foreach (var (gg, hf, mixtralName) in new[] { ("ffn_gate_exps", "gate_proj", "w1"), ("ffn_up_exps", "up_proj", "w3"), ("ffn_down_exps", "down_proj", "w2") })
            {
                var all = T(b + gg + ".weight");
                var shape = Shape(b + gg + ".weight");
                long each = shape[1] * shape[2];
                for (int e = 0; e < experts; e++)
                    st.Add($"{moe}experts.{e}.{(mixtral ? mixtralName : hf)}.weight", [shape[1], shape[2]], all.AsSpan((int)(e * each), (int)each));
            }
            if (g.Find(b + "ffn_gate_shexp.weight") is not null)
            {
                Put(m + "mlp.shared_expert.gate_proj.weight", b + "ffn_gate_shexp.weight");
                Put(m + "mlp.shared_expert.up_proj.weight", b + "ffn_up_shexp.weight");
                Put(m + "mlp.shared_expert.down_proj.weight", b + "ffn_down_shexp.weight");
                st.Add(m + "mlp.shared_expert_gate.weight", [1, d], T(b + "ffn_gate_inp_shexp.weight"));
            }
        }
        st.Write(Path.Combine(folder, "model.safetensors"));

        var config = new Dictionary<string, object>
        {
            ["model_type"] = arch switch { "llama" => "mixtral", "qwen2moe" => "qwen2_moe", "qwen3moe" => "qwen3_moe", _ => arch },
            ["hidden_size"] = d, ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = hd, ["vocab_size"] = (int)g.Find("token_embd.weight")!.Shape[0], ["max_position_embeddings"] = 512,
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false, ["hidden_act"] = "silu",
            ["num_experts_per_tok"] = Key("expert_used_count"),
        };
        int expertFfn = (int)Shape(b0("ffn_gate_exps"))[1];
        string b0(string t) => $"blk.0.{t}.weight";
        switch (arch)
        {
            case "llama": config["num_local_experts"] = experts; config["intermediate_size"] = expertFfn; break;
            case "olmoe": config["num_experts"] = experts; config["intermediate_size"] = expertFfn; config["norm_topk_prob"] = false; break;
            case "qwen3moe": config["num_experts"] = experts; config["moe_intermediate_size"] = expertFfn; config["intermediate_size"] = 4 * expertFfn; config["norm_topk_prob"] = true; break;
            case "qwen2moe":
                config["num_experts"] = experts; config["moe_intermediate_size"] = expertFfn; config["intermediate_size"] = 4 * expertFfn; config["norm_topk_prob"] = false;
                config["shared_expert_intermediate_size"] = (int)Shape(b0("ffn_gate_shexp"))[0];
                break;
        }
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
    }

    /// <summary>
    /// gpt-oss as transformers' modeling_gpt_oss holds it: <c>mlp.router</c> with a bias, <c>self_attn.sinks</c>,
    /// <c>mlp.experts.gate_up_proj</c> [E, D, 2F] with gate and up in alternate columns (x @ W: input-major),
    /// <c>gate_up_proj_bias</c> [E, 2F] likewise, <c>down_proj</c> [E, F, D], <c>down_proj_bias</c> [E, D]. Expert
    /// weights stored as MXFP4 in the GGUF become the published checkpoint's <c>*_blocks</c> [E, out, in/32, 16] (element
    /// 2j in the low nibble of byte j, 2j + 1 in the high) and <c>*_scales</c> [E, out, in/32], output-major, gate and up
    /// rows alternating, with <c>quantization_config</c> mxfp4 (ggml's block: the E8M0 byte, then element j in the low
    /// nibble of byte j and j + 16 in the high; the same codes and exponent).
    /// </summary>
    private static void WriteGptOss(GgufFile g, string folder, int d, int heads, int kvHeads, int layers, int hd, int experts)
    {
        const string arch = "gpt-oss";
        var st = new SafetensorsWriter();
        float[] T(string name) => g.Find(name)!.ToFloat32();
        long[] Shape(string name) => g.Find(name)!.Shape;
        void Put(string hf, string name) => st.Add(hf, Shape(name), T(name));
        Put("model.embed_tokens.weight", "token_embd.weight");
        Put("model.norm.weight", "output_norm.weight");
        Put("lm_head.weight", "output.weight");
        int f = (int)Shape("blk.0.ffn_gate_exps.weight")[1];
        bool mxfp4 = g.Find("blk.0.ffn_gate_exps.weight")!.Type == TensorType.MXFP4;
        for (int l = 0; l < layers; l++)
        {
            string b = $"blk.{l}.", m = $"model.layers.{l}.";
            Put(m + "input_layernorm.weight", b + "attn_norm.weight");
            Put(m + "post_attention_layernorm.weight", b + "post_attention_norm.weight");
            foreach (var (gg, hf) in new[] { ("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj") })
            {
                Put($"{m}self_attn.{hf}.weight", $"{b}{gg}.weight");
                Put($"{m}self_attn.{hf}.bias", $"{b}{gg}.bias");
            }
            Put(m + "self_attn.sinks", b + "attn_sinks.weight");
            Put(m + "mlp.router.weight", b + "ffn_gate_inp.weight");
            Put(m + "mlp.router.bias", b + "ffn_gate_inp.bias");
            var gate = T(b + "ffn_gate_exps.weight"); var up = T(b + "ffn_up_exps.weight"); var down = T(b + "ffn_down_exps.weight");
            var gateUp = new float[(long)experts * d * 2 * f];
            var downT = new float[(long)experts * f * d];
            for (int e = 0; e < experts; e++)
                for (int j = 0; j < f; j++)
                    for (int i = 0; i < d; i++)
                    {
                        gateUp[((long)e * d + i) * 2 * f + 2 * j] = gate[((long)e * f + j) * d + i];
                        gateUp[((long)e * d + i) * 2 * f + 2 * j + 1] = up[((long)e * f + j) * d + i];
                        downT[((long)e * f + j) * d + i] = down[((long)e * d + i) * f + j];
                    }
            if (mxfp4)
            {
                // Rows of the output-major [E, 2F, D]: gate row j at 2j, up row j at 2j + 1.
                var gb = g.Find(b + "ffn_gate_exps.weight")!.Bytes; var ub = g.Find(b + "ffn_up_exps.weight")!.Bytes;
                int rowBlocks = d / 32;
                var rows = new byte[(long)experts * 2 * f * rowBlocks * 17];
                for (int e = 0; e < experts; e++)
                    for (int j = 0; j < f; j++)
                        for (int part = 0; part < 2; part++)
                            (part == 0 ? gb : ub).Slice(((e * f + j) * rowBlocks) * 17, rowBlocks * 17)
                                .CopyTo(rows.AsSpan(((e * 2 * f + 2 * j + part) * rowBlocks) * 17));
                PutMxfp4(st, m + "mlp.experts.gate_up_proj", rows, [experts, 2 * f, rowBlocks]);
                PutMxfp4(st, m + "mlp.experts.down_proj", g.Find(b + "ffn_down_exps.weight")!.Bytes.ToArray(), [experts, d, f / 32]);
            }
            else
            {
                st.Add(m + "mlp.experts.gate_up_proj", [experts, d, 2 * f], gateUp);
                st.Add(m + "mlp.experts.down_proj", [experts, f, d], downT);
            }
            var gateBias = T(b + "ffn_gate_exps.bias"); var upBias = T(b + "ffn_up_exps.bias");
            var gateUpBias = new float[experts * 2 * f];
            for (int e = 0; e < experts; e++)
                for (int j = 0; j < f; j++) { gateUpBias[e * 2 * f + 2 * j] = gateBias[e * f + j]; gateUpBias[e * 2 * f + 2 * j + 1] = upBias[e * f + j]; }
            st.Add(m + "mlp.experts.gate_up_proj_bias", [experts, 2 * f], gateUpBias);
            Put(m + "mlp.experts.down_proj_bias", b + "ffn_down_exps.bias");
        }
        st.Write(Path.Combine(folder, "model.safetensors"));

        int window = (int)g.GetInteger($"{arch}.attention.sliding_window")!;
        var config = new Dictionary<string, object>
        {
            ["model_type"] = "gpt_oss", ["architectures"] = new[] { "GptOssForCausalLM" },
            ["hidden_size"] = d, ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = hd, ["vocab_size"] = (int)Shape("token_embd.weight")[0], ["max_position_embeddings"] = 131072,
            ["initial_context_length"] = 4096, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 150000.0, ["tie_word_embeddings"] = false,
            ["hidden_act"] = "silu", ["attention_bias"] = true, ["swiglu_limit"] = 7.0,
            ["num_local_experts"] = experts, ["num_experts_per_tok"] = (int)g.GetInteger($"{arch}.expert_used_count")!,
            ["experts_per_token"] = (int)g.GetInteger($"{arch}.expert_used_count")!, ["intermediate_size"] = f,
            ["sliding_window"] = window,
            ["layer_types"] = Enumerable.Range(0, layers).Select(i => (i + 1) % 2 != 0 ? "sliding_attention" : "full_attention").ToArray(),
            // gpt-oss-20b's rope_scaling, without its "truncate": false (llama.cpp always truncates the correction range).
            ["rope_scaling"] = new Dictionary<string, object>
            {
                ["rope_type"] = "yarn", ["factor"] = (double)g.GetFloat($"{arch}.rope.scaling.factor")!,
                ["original_max_position_embeddings"] = (int)g.GetInteger($"{arch}.rope.scaling.original_context_length")!,
                ["beta_fast"] = 32.0, ["beta_slow"] = 1.0,
            },
        };
        if (mxfp4) config["quantization_config"] = new Dictionary<string, object> { ["quant_method"] = "mxfp4", ["modules_to_not_convert"] = new[] { "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head" } };
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config));
    }

    /// <summary>ggml MXFP4 blocks (17 bytes: E8M0, then elements j and j + 16 in byte j) as transformers' blocks and scales.</summary>
    private static void PutMxfp4(SafetensorsWriter st, string name, byte[] ggml, long[] blockShape)
    {
        long count = ggml.Length / 17;
        var blocks = new byte[count * 16];
        var scales = new byte[count];
        for (long k = 0; k < count; k++)
        {
            scales[k] = ggml[k * 17];
            int Code(int i) => i < 16 ? ggml[k * 17 + 1 + i] & 0xF : ggml[k * 17 + 1 + i - 16] >> 4;
            for (int j = 0; j < 16; j++) blocks[k * 16 + j] = (byte)(Code(2 * j) | Code(2 * j + 1) << 4);
        }
        st.Add(name + "_blocks", TensorType.U8, [.. blockShape, 16], blocks);
        st.Add(name + "_scales", TensorType.U8, blockShape, scales);
    }
}
