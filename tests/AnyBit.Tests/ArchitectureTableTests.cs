using AnyBit.Models;

namespace AnyBit.Tests;

/// <summary>The tensor-role table and the architecture registry, row by row: a new row is tested without being listed here.</summary>
public class ArchitectureTableTests
{
    public static TheoryData<string> Roles() => new(TensorRoles.All.Select(r => r.Gguf));
    public static TheoryData<string> Architectures() => new(Architecture.All.Select(a => a.Name));

    private static TensorRole Role(string gguf) => TensorRoles.All.Single(r => r.Gguf == gguf);

    [Theory, MemberData(nameof(Roles))]
    public void A_role_is_found_by_each_of_its_names(string gguf)
    {
        var role = Role(gguf);
        int layer = role.PerLayer ? 7 : -1;
        string name = role.GgufName(layer);
        Assert.Equal((role, layer), TensorRoles.FromGguf(name));
        if (role.IsExperts) Assert.Equal((role, 7, 5), TensorRoles.FromGgufPerExpert(role.ExpertName(7, 5)));
        else Assert.Null(TensorRoles.FromGgufPerExpert(name));
        // An expert's Hugging Face tensor is that expert's slice, under llama.cpp's per-expert GGUF name.
        foreach (string hf in role.HuggingFaceAliases.Prepend(role.HuggingFace).OfType<string>())
            Assert.Equal(role.IsExperts ? role.ExpertName(7, 5) : name, TensorRoles.GgufNameOfHuggingFace(hf.Replace("{i}", "7").Replace("{e}", "5")));
        if (role.Llama2c is string field) Assert.Same(role, TensorRoles.FromLlama2c(field));
    }

    [Theory, MemberData(nameof(Roles))]
    public void A_role_is_consistent(string gguf)
    {
        var role = Role(gguf);
        // Linears (and only they) read a calibration input; the loaded model holds every role but rope_freqs.
        Assert.Equal(role.Kind == TensorKind.Linear, role.Input is not null);
        Assert.Equal(role.Kind != TensorKind.RopeFactors, role.HeldByModel);
        // The router is a float linear; the shared expert's gate a vector.
        Assert.Equal(role.Kind == TensorKind.Linear && !role.IsExperts || role == TensorRoles.FfnGateInp, role.LinearOf is not null);
        Assert.Equal(role.IsExperts, role.ExpertsOf is not null);
        var c = new ModelConfig
        {
            Architecture = Architecture.All[0], HiddenSize = 64, IntermediateSize = 96, NumLayers = 2, NumHeads = 4, NumKvHeads = 2,
            HeadDim = 16, VocabSize = 100, MaxPositions = 32,
            Experts = new ExpertConfig { Count = 4, Used = 2, FfnSize = 32, SharedFfnSize = 48 },
        };
        var shape = role.Shape(c);
        // gpt-oss's gate, up and down biases hold a row per expert.
        bool perExpertBias = TensorRoles.ExpertBiases.Contains(role) && role != TensorRoles.FfnGateInpBias;
        Assert.Equal(role.IsExperts ? 3 : role.IsQuantizable || role == TensorRoles.FfnGateInp || perExpertBias ? 2 : 1, shape.Length);
        Assert.All(shape, d => Assert.True(d > 0));
    }

    [Fact]
    public void Names_outside_the_table_have_no_role()
    {
        Assert.Null(TensorRoles.FromGguf("blk.x.attn_q.weight"));
        Assert.Null(TensorRoles.FromGguf("blk.0.attn_q.scales"));
        Assert.Null(TensorRoles.GgufNameOfHuggingFace("model.layers.0.mlp.act_fn.weight"));
        Assert.Null(TensorRoles.GgufNameOfHuggingFace("model.rotary_emb.inv_freq"));
    }

    [Theory, MemberData(nameof(Architectures))]
    public void An_architecture_is_found_by_its_file_names_and_has_the_dense_core(string name)
    {
        var a = Architecture.All.Single(x => x.Name == name);
        Assert.Same(a, Architecture.FromGgufName(a.GgufName));
        foreach (string bitnetCpp in a.BitnetCppGgufNames) Assert.Same(a, Architecture.FromGgufName(bitnetCpp));
        foreach (string type in a.HfModelTypes) Assert.Same(a, Architecture.FromHfModelType(type));
        // What quantize writes is a family AnyBit reads back.
        Assert.NotNull(Architecture.FromGgufName(a.GgufWriteName));
        Assert.All(TensorRoles.All.Where(r => r.Required), r => Assert.True(a.Has(r), $"{name} lacks {r}"));
        // A feed-forward block: dense, experts, or (llama, which Mixtral's GGUF files use) either.
        Assert.True(TensorRoles.DenseFeedForward.All(a.Has) || TensorRoles.Experts.All(a.Has), $"{name} has no feed-forward block");
        // Roles are listed in the table's (file) order.
        var order = a.Roles.Select(r => TensorRoles.All.ToList().IndexOf(r)).ToList();
        Assert.Equal(order.OrderBy(i => i), order);
    }

    [Fact]
    public void File_order_is_llama_cpp_order()
    {
        var names = TensorRoles.InFileOrder(TensorRoles.All.Where(r => r.Required || r == TensorRoles.Output || TensorRoles.DenseFeedForward.Contains(r)).ToArray(), 2).Select(t => t.Name);
        Assert.Equal(
        [
            "token_embd.weight",
            "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
            "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
            "blk.1.attn_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight", "blk.1.attn_output.weight",
            "blk.1.ffn_norm.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight", "blk.1.ffn_down.weight",
            "output_norm.weight", "output.weight",
        ], names);
    }
}
