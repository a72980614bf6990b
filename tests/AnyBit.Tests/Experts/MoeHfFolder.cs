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
}
