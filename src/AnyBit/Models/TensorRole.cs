using AnyBit.Kernels;

namespace AnyBit.Models;

/// <summary>What a tensor is to the loader and the quantizer.</summary>
public enum TensorKind
{
    /// <summary>The token embedding: a matrix read by rows, quantized like a linear weight.</summary>
    Embedding,
    /// <summary>A linear layer's weight matrix: quantized, and calibration observes its input.</summary>
    Linear,
    /// <summary>An RMSNorm weight vector: kept float32.</summary>
    Norm,
    /// <summary>A linear layer's bias vector: kept float32.</summary>
    Bias,
    /// <summary>llama.cpp's per-frequency RoPE divisors: kept float32.</summary>
    RopeFactors,
    /// <summary>
    /// A Mixture-of-Experts router (or shared-expert gate): a linear the forward pass runs in float32, which
    /// llama-quantize never quantizes (a routing decision flipped by rounding changes the whole token's output).
    /// </summary>
    Router,
}

/// <summary>
/// One row of <see cref="TensorRoles"/>: a tensor's names in each file format, its shape, what kind of tensor it is
/// and where the loaded model holds it. Names are patterns in which <c>{i}</c> stands for the layer index.
/// </summary>
public sealed class TensorRole
{
    /// <summary>GGUF name pattern (<c>blk.{i}.attn_q.weight</c>): llama.cpp's name, and AnyBit's canonical one.</summary>
    public required string Gguf { get; init; }
    /// <summary>Hugging Face transformers name pattern (<c>model.layers.{i}.self_attn.q_proj.weight</c>), if it has one.</summary>
    public string? HuggingFace { get; init; }
    /// <summary>Other Hugging Face names of the same tensor in some families (Mixtral's <c>block_sparse_moe</c>).</summary>
    public string[] HuggingFaceAliases { get; init; } = [];
    /// <summary>
    /// For the 3-D tensor of every expert's weights (<c>blk.{i}.ffn_gate_exps.weight</c>, [experts, rows, columns]):
    /// the name of one expert's 2-D slice, in which <c>{e}</c> stands for the expert (llama.cpp's older per-expert
    /// GGUF name <c>blk.{i}.ffn_gate.{e}.weight</c>, which Hugging Face's per-expert tensors map to). Null for other roles.
    /// </summary>
    public string? GgufPerExpert { get; init; }
    /// <summary>The field of llama.cpp's llama2.c <c>TransformerWeights</c> that holds it (<c>wq</c>), if any.</summary>
    public string? Llama2c { get; init; }
    public required TensorKind Kind { get; init; }
    /// <summary>
    /// Every dense decoder has it: the loader fails when it is missing. Other roles are read when an architecture
    /// lists them and the file holds them.
    /// </summary>
    public bool Required { get; init; }
    /// <summary>
    /// For a linear weight, the activations it reads. Linears with the same input (q, k, v; gate, up) share one
    /// calibration Hessian, one AWQ scale and one GPTQ factorization.
    /// </summary>
    public LinearInput? Input { get; init; }
    /// <summary>
    /// For Q and K weights and biases, the number of rotary heads their rows form: the rows GGUF "llama" stores in adjacent-pair
    /// order (see <see cref="Architecture.GgufAdjacentRopePairs"/>).
    /// </summary>
    public Func<ModelConfig, int>? RotaryHeads { get; init; }
    /// <summary>For a fused tensor (<see cref="TensorRoles.Fused"/>), the roles whose rows it holds, in row order.</summary>
    public IReadOnlyList<TensorRole>? Parts { get; init; }
    /// <summary>Shape the config implies, outermost dimension first.</summary>
    public required Func<ModelConfig, long[]> Shape { get; init; }
    /// <summary>
    /// The loaded linear weight (layer index ignored for global tensors; null where the layer has none, as dense
    /// feed-forward weights in a Mixture-of-Experts layer); null for tensors that are not single linears.
    /// </summary>
    public Func<TransformerWeights, int, LinearWeight?>? LinearOf { get; init; }
    /// <summary>For expert tensors, the loaded weight of each expert in a layer; null for other roles.</summary>
    public Func<TransformerWeights, int, LinearWeight[]?>? ExpertsOf { get; init; }
    /// <summary>The loaded float32 vector or matrix of a non-linear tensor; null when the model has none.</summary>
    public Func<TransformerWeights, int, NativeBuffer?>? BufferOf { get; init; }

    /// <summary>True for roles repeated in every decoder layer (their names hold <c>{i}</c>).</summary>
    public bool PerLayer => Gguf.Contains("{i}", StringComparison.Ordinal);
    /// <summary>Every expert's weights in one 3-D tensor [experts, rows, columns].</summary>
    public bool IsExperts => GgufPerExpert is not null;
    /// <summary>
    /// A single linear layer inside the decoder blocks (not the output head, not experts): what BitNet ternarizes,
    /// imatrix records and the accuracy methods edit.
    /// </summary>
    public bool IsLayerLinear => Kind == TensorKind.Linear && PerLayer && !IsExperts;
    /// <summary>A matrix the quantizer gives the chosen format (norms, biases and RoPE factors stay float32).</summary>
    public bool IsQuantizable => Kind is TensorKind.Linear or TensorKind.Embedding;

    /// <summary>The GGUF name in layer <paramref name="layer"/>.</summary>
    public string GgufName(int layer) => PerLayer ? Gguf.Replace("{i}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) : Gguf;

    /// <summary>True when the loaded model holds it as a weight (not rope_freqs, which the rotary tables absorb).</summary>
    public bool HeldByModel => LinearOf is not null || BufferOf is not null || ExpertsOf is not null;

    /// <summary>The float32 buffer the loaded model holds for it (loaded with float32 kernels for linears); null when it holds none.</summary>
    public NativeBuffer? Float32Of(TransformerWeights w, int layer) => LinearOf is not null ? LinearOf(w, layer)?.F32 : BufferOf?.Invoke(w, layer);

    /// <summary>One expert's 2-D name in layer <paramref name="layer"/> (<see cref="GgufPerExpert"/>).</summary>
    public string ExpertName(int layer, int expert) =>
        (GgufPerExpert ?? throw new InvalidOperationException($"{Gguf} is not an expert tensor"))
            .Replace("{i}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{e}", expert.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    public override string ToString() => Gguf;
}
