using System.Text.Json;
using AnyBit.Formats;
using AnyBit.IO;
using AnyBit.Quantization;
using AnyBit.Quantization.Methods;

namespace AnyBit.Tests;

/// <summary>
/// llama.cpp's mixes as presets: every tensor's type against llama-quantize's own choice (Fixtures/presets, made with
/// the real tool), file types, the refusals without an importance matrix, and budgets without a format.
/// </summary>
public class QuantPresetTests
{
    private static string PresetFixture(string file) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "presets", file);

    /// <summary>One model of a fixture: its facts and weight matrices, and llama-quantize's results per preset.</summary>
    private sealed record Case(string Label, MixModel Model, List<(string Name, long[] Shape)> Tensors, JsonElement Imatrix, JsonElement NoImatrix)
    {
        /// <summary>A preset's tensor → type, from a map or from a string of types in the order of the shapes.</summary>
        public Dictionary<string, string> Types(JsonElement preset)
        {
            var t = preset.GetProperty("tensors");
            if (t.ValueKind == JsonValueKind.Object) return t.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            var list = t.GetString()!.Split(' ');
            Assert.Equal(Tensors.Count, list.Length);
            return Tensors.Select((x, i) => (x.Name, list[i])).ToDictionary(p => p.Name, p => p.Item2);
        }
    }

    private static Case Read(string label, JsonElement e)
    {
        var m = e.GetProperty("model");
        var model = new MixModel(m.GetProperty("layers").GetInt32(), m.GetProperty("heads").GetInt32(), m.GetProperty("kv_heads").GetInt32());
        var tensors = m.GetProperty("shapes").EnumerateObject().Select(p => (p.Name, p.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray())).ToList();
        return new Case(label, model, tensors, e.GetProperty("imatrix"), e.GetProperty("no_imatrix"));
    }

    private static List<Case> Cases => LazyCases.Value;
    private static readonly Lazy<List<Case>> LazyCases = new(LoadCases);

    private static List<Case> LoadCases()
    {
        var cases = new List<Case>();
        using (var gl = JsonDocument.Parse(File.ReadAllText(PresetFixture("gutenberg-llama.json"))))
            cases.Add(Read("gutenberg-llama", gl.RootElement.Clone()));
        using var synthetic = JsonDocument.Parse(File.ReadAllText(PresetFixture("synthetic.json")));
        foreach (var m in synthetic.RootElement.GetProperty("models").EnumerateObject())
            cases.Add(Read(m.Name, m.Value.Clone()));
        return cases;
    }

    public static TheoryData<string> Labels => new(Cases.Select(c => c.Label));

    [Fact]
    public void The_fixtures_cover_every_preset()
    {
        foreach (var c in Cases)
            Assert.Equal(QuantPresets.Names.Order(), c.Imatrix.EnumerateObject().Select(p => p.Name).Order());
    }

    /// <summary>With an importance matrix: every tensor's type is llama-quantize's, and so is the file type.</summary>
    [Theory]
    [MemberData(nameof(Labels))]
    public void Every_tensor_gets_llama_quantize_type_with_an_importance_matrix(string label)
    {
        var c = Cases.Single(x => x.Label == label);
        foreach (var p in c.Imatrix.EnumerateObject())
        {
            Assert.Equal(p.Value.GetProperty("llama").GetString(), QuantPresets.LlamaName(p.Name));
            Assert.Equal((uint)p.Value.GetProperty("file_type").GetInt32(), QuantPresets.FileType(p.Name));
            var expected = c.Types(p.Value);
            var chosen = QuantPresets.Choose(p.Name, c.Tensors, c.Model, hasImportance: true);
            Assert.Equal(expected.Keys.Order(), chosen.Keys.Order());
            foreach (var (name, type) in expected)
                Assert.True(type == chosen[name].ToString(), $"{label} {p.Name} {name}: llama-quantize {type}, AnyBit {chosen[name]}");
        }
    }

    /// <summary>
    /// Without one: llama-quantize's refusals are AnyBit's (the whole preset before it starts, or the tensor it names),
    /// and where it quantizes, the types that depend on has_imatrix change as in llama.cpp.
    /// </summary>
    [Theory]
    [MemberData(nameof(Labels))]
    public void Without_an_importance_matrix_the_refusals_and_types_are_llama_quantize_s(string label)
    {
        var c = Cases.Single(x => x.Label == label);
        foreach (var p in c.NoImatrix.EnumerateObject())
        {
            var with = c.Types(c.Imatrix.GetProperty(p.Name));
            var chosen = QuantPresets.Choose(p.Name, c.Tensors, c.Model, hasImportance: false);
            var refusedTensors = chosen.Where(kv => QuantPresets.NeedsImportance(kv.Value, kv.Key, p.Name)).Select(kv => kv.Key).ToList();
            if (p.Value.TryGetProperty("refused", out var refusal))
            {
                string message = refusal.GetString()!;
                if (message.StartsWith("Please do not use", StringComparison.Ordinal))
                    Assert.True(QuantPresets.RefusedWithoutImportance(p.Name), $"{p.Name}: llama-quantize refuses it before starting");
                else
                {
                    Assert.False(QuantPresets.RefusedWithoutImportance(p.Name), p.Name);
                    string tensor = message.Split("for tensor ")[1].Split(' ')[0];
                    Assert.True(refusedTensors.FirstOrDefault() == tensor, $"{label} {p.Name}: llama-quantize refuses {tensor}, AnyBit {string.Join(",", refusedTensors)}");
                }
                continue;
            }
            Assert.False(QuantPresets.RefusedWithoutImportance(p.Name), p.Name);
            Assert.Empty(refusedTensors);
            var differs = p.Value.GetProperty("differs").EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetString()!);
            foreach (var (name, type) in chosen)
            {
                string expected = differs.GetValueOrDefault(name) ?? with[name];
                Assert.True(expected == type.ToString(), $"{label} {p.Name} {name} without imatrix: llama-quantize {expected}, AnyBit {type}");
            }
        }
    }

    /// <summary>The whole quantize path (HF folder → plan) picks the fixture's types, for the presets whose types this build has.</summary>
    [Fact]
    public void Planning_the_gutenberg_llama_folder_gives_the_fixture_types()
    {
        var c = Cases.Single(x => x.Label == "gutenberg-llama");
        int planned = 0;
        foreach (var p in c.Imatrix.EnumerateObject())
        {
            var expected = c.Types(p.Value);
            if (expected.Values.Any(t => FormatTable.ByType(Enum.Parse<TensorType>(t)) is null)) continue; // types still to come
            var (plan, input) = ModelQuantizer.Plan(Shared.Data("models", "gutenberg-llama"), new QuantizeOptions { Format = p.Name, HasImportance = true });
            using (input)
                foreach (var (name, type) in expected)
                    Assert.Equal(type, plan.Tensors.Single(t => t.Name == name).Format.GgmlType.ToString());
            planned++;
        }
        Assert.True(planned >= 10, $"{planned} presets planned");
    }

    /// <summary>Rows that fit no 32-wide block either: llama.cpp's second fallback (F16), and its refusal where there is none.</summary>
    [Fact]
    public void Rows_of_80_fall_back_to_f16_and_an_output_head_of_80_is_refused()
    {
        var model = new MixModel(Layers: 2, Heads: 4, KvHeads: 4);
        (string, long[])[] tensors = [("blk.0.attn_q.weight", [80, 80]), ("blk.0.ffn_down.weight", [80, 256]), ("blk.1.ffn_down.weight", [80, 256])];
        var chosen = QuantPresets.Choose("q4_k_m", tensors, model, hasImportance: false);
        Assert.Equal(TensorType.F16, chosen["blk.0.attn_q.weight"]); // Q4_K → Q5_0 → F16
        Assert.Equal(TensorType.Q4_K, chosen["blk.0.ffn_down.weight"]); // use_more_bits(0, 2): the first eighth of 2 layers is none
        Assert.Equal(TensorType.Q6_K, chosen["blk.1.ffn_down.weight"]); // use_more_bits(1, 2): the last eighth
        // The head goes to Q8_0 when its rows do not fit Q4_K; rows of 80 do not fit Q8_0 either, and llama.cpp has no
        // fallback for Q8_0 ("Unsupported tensor size encountered").
        var e = Assert.Throws<AnyBitException>(() => QuantPresets.Choose("q4_k_m", [("output.weight", [512, 80])], model, false));
        Assert.Contains("output.weight", e.Message);
    }

    [Fact]
    public void Llama_order_counts_attn_v_by_layer_not_by_name()
    {
        // Q3_K_M gives the first two attn_v tensors in llama.cpp's order Q5_K: blk.0 and blk.1, not blk.0 and blk.10.
        var model = new MixModel(Layers: 12, Heads: 8, KvHeads: 8);
        var tensors = Enumerable.Range(0, 12).Select(l => ($"blk.{l}.attn_v.weight", new long[] { 256, 256 })).Reverse().ToList();
        var chosen = QuantPresets.Choose("q3_k_m", tensors, model, hasImportance: false);
        Assert.Equal(TensorType.Q5_K, chosen["blk.1.attn_v.weight"]);
        Assert.Equal(TensorType.Q4_K, chosen["blk.10.attn_v.weight"]);
    }

    /// <summary>
    /// The i-quant names are llama-quantize's mixes, as the issue's preset list and llama-quantize name them; the older
    /// types AnyBit always quantized pure keep their names, and their mixes a "_mix" suffix.
    /// </summary>
    [Fact]
    public void I_quant_names_are_the_mixes_and_older_types_stay_pure()
    {
        foreach (string name in new[] { "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m", "iq4_xs" })
            Assert.True(QuantPresets.IsPreset(name), name);
        foreach (var t in new[] { TensorType.Q2_K, TensorType.Q4_0, TensorType.IQ4_NL, TensorType.Q4_K }) Assert.False(QuantPresets.IsPreset(QuantPresets.Spec(t)));
        foreach (string name in QuantPresets.Names.Where(n => FormatTable.ByName(n) is not null))
            Assert.Equal(name, QuantPresets.PureSpec(name));
        Assert.Equal("q4_k", QuantPresets.PureSpec("q4_k_m"));
        Assert.Equal("q2_k", QuantPresets.PureSpec("q2_k_mix"));
        Assert.Equal("IQ2_XXS", QuantPresets.LlamaName("iq2_xxs"));
        Assert.Equal(29u, QuantPresets.FileType("iq2_m"));
        Assert.Equal(15u, QuantPresets.FileType("q4_k_m"));
    }

    /// <summary>A whole model in an i-quant name is llama-quantize's mix; --pure gives every matrix the type; an override is the type.</summary>
    [Fact]
    public void Pure_gives_every_matrix_the_type_and_overrides_mean_the_type()
    {
        var (mix, a) = ModelQuantizer.Plan(Model, new QuantizeOptions { Format = "iq3_xxs", HasImportance = true });
        using (a) Assert.Contains(mix.Tensors, t => t.Format.GgmlType is not (TensorType.IQ3_XXS or TensorType.F32));
        var (pure, b) = ModelQuantizer.Plan(Model, new QuantizeOptions { Format = "iq3_xxs", Pure = true, HasImportance = true });
        using (b) Assert.All(pure.Tensors.Where(t => t.Format.GgmlType != TensorType.F32), t => Assert.Equal(TensorType.IQ3_XXS, t.Format.GgmlType));
        var (over, c) = ModelQuantizer.Plan(Model, new QuantizeOptions { Format = "q8_0", TensorTypes = [(new System.Text.RegularExpressions.Regex("ffn_"), "iq3_xxs")], HasImportance = true });
        using (c) Assert.All(over.Tensors.Where(t => t.Name.Contains("ffn_") && t.Shape.Length == 2), t => Assert.Equal(TensorType.IQ3_XXS, t.Format.GgmlType));
        var (km, d) = ModelQuantizer.Plan(Model, new QuantizeOptions { Format = "q4_k_m", Pure = true });
        using (d) Assert.All(km.Tensors.Where(t => t.Format.GgmlType != TensorType.F32), t => Assert.Equal(TensorType.Q4_K, t.Format.GgmlType));
    }

    /// <summary>quantize.cpp's list, and a single type llama-quant.cpp refuses for every tensor.</summary>
    [Fact]
    public void Refused_without_importance_are_llama_quantize_s_mixes_and_the_types_it_refuses()
    {
        string[] refused = ["iq1_s", "iq1_m", "iq2_s", "iq2_xxs", "iq2_xs", "q2_k_s"];
        foreach (string spec in refused) Assert.True(QuantPresets.RefusedWithoutImportance(spec), spec);
        foreach (string spec in new[] { "iq2_m", "iq3_xxs", "q2_k_mix", "q2_k", "iq3_s", "iq4_xs", "q4_k_m", "int2:g64" })
            Assert.False(QuantPresets.RefusedWithoutImportance(spec), spec);
        Assert.False(QuantPresets.NeedsImportance(TensorType.IQ1_M, "token_embd.weight", "iq1_m"));
        Assert.True(QuantPresets.NeedsImportance(TensorType.Q2_K, "blk.0.attn_q.weight", "q2_k_s"));
        Assert.False(QuantPresets.NeedsImportance(TensorType.Q2_K, "token_embd.weight", "q2_k_s"));
        Assert.False(QuantPresets.NeedsImportance(TensorType.Q2_K, "blk.0.attn_q.weight", "q2_k_mix"));
    }

    private static readonly string Model = Shared.Fixture("models", "llama3-bpe");
    private static readonly string Text = Shared.Data("text", "eval", "alice.txt");

    [Theory]
    [InlineData(new[] { "-f", "iq2_xxs" }, "iq2_xxs needs an importance matrix")]
    [InlineData(new[] { "-f", "iq2_xxs", "--pure" }, "iq2_xxs needs an importance matrix")]
    [InlineData(new[] { "-f", "q2_k_s" }, "q2_k_s needs an importance matrix")]
    [InlineData(new[] { "-f", "iq2_m" }, "blk.0.attn_k.weight: missing importance matrix for a very low-bit quantization (IQ2_S)")]
    [InlineData(new[] { "-f", "iq2_xxs", "--rotate" }, "iq2_xxs needs an importance matrix")]
    [InlineData(new string[0], "--format is required")]
    public void Quantize_refuses_in_one_line_and_writes_nothing(string[] args, string message)
    {
        string dir = Shared.TempDir();
        try
        {
            string output = Path.Combine(dir, "x.gguf");
            var r = CliRunner.Run(["quantize", "-m", Model, "-o", output, .. args]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Stderr);
            Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.False(File.Exists(output));
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>llama-quant.cpp's per-tensor refusal, for a type given to one tensor.</summary>
    [Fact]
    public void A_tensor_given_a_type_that_needs_importance_is_refused_without_one()
    {
        var options = new QuantizeOptions { Format = "q4_k", TensorTypes = [(new System.Text.RegularExpressions.Regex("attn_q"), "iq2_s")] };
        var e = Assert.Throws<AnyBitException>(() => ModelQuantizer.Plan(Model, options));
        Assert.StartsWith("cannot quantize as asked, nothing was written: blk.0.attn_q.weight: missing importance matrix for a very low-bit quantization (IQ2_S)", e.Message);
        Assert.DoesNotContain("attn_k", e.Message);
    }

    /// <summary>A budget alone chooses the formats: no --format, the default candidates, no whole-file type.</summary>
    [Fact]
    public void A_budget_without_a_format_plans_from_the_default_candidates()
    {
        string dir = Shared.TempDir();
        try
        {
            string output = Path.Combine(dir, "mixed.gguf");
            var r = CliRunner.Run("quantize", "-m", Model, "--target-bpw", "5", "--calibration", Text,
                "--calibration-windows", "2", "--calibration-length", "32", "-o", output, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var g = GgufFile.Open(output);
            var candidates = MixedPrecisionPlanner.DefaultCandidates.ToHashSet();
            var quantized = g.Tensors.Where(t => t.Shape.Length >= 2).ToList();
            Assert.NotEmpty(quantized);
            foreach (var t in quantized) Assert.Contains(t.TypeName.ToLowerInvariant(), candidates);
            Assert.Null(g.GetInteger("general.file_type"));
            Assert.NotNull(g.GetString("anybit.quantization.plan"));
            long weights = g.Tensors.Sum(t => TensorTypes.ElementCount(t.Shape)), bytes = g.Tensors.Sum(t => t.ByteLength);
            Assert.True(8.0 * bytes / weights <= 5.0, $"{8.0 * bytes / weights:F3} bits per weight");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Default_candidates_are_the_ladder_types_this_build_has_smallest_first()
    {
        var formats = MixedPrecisionPlanner.DefaultCandidates.Select(FormatRegistry.Parse).ToList();
        Assert.Contains("q4_k", MixedPrecisionPlanner.DefaultCandidates);
        Assert.Contains("iq4_xs", MixedPrecisionPlanner.DefaultCandidates);
        Assert.Equal(formats.Select(f => f.BitsPerWeight).Order(), formats.Select(f => f.BitsPerWeight));
        Assert.All(formats, f => Assert.NotNull(f.GgmlType));
    }
}
