using AnyBit.IO;
using AnyBit.Models;

namespace AnyBit.Quantization;

/// <summary>One tensor of the output file: where its floats come from and the format it is stored in.</summary>
public sealed record PlannedTensor(string Name, long[] Shape, TensorFormat Format, Func<float[]> Source)
{
    /// <summary>When set, produces the encoded bytes directly (GPTQ), instead of quantizing <see cref="Source"/> with <see cref="Format"/>.</summary>
    public Func<byte[]>? Encoded { get; init; }
}

/// <summary>The whole output: tensors in order, metadata, and a summary for the user.</summary>
public sealed class QuantPlan
{
    public required List<PlannedTensor> Tensors { get; init; }
    public required Action<GgufWriter> WriteMetadata { get; init; }
    public long OutputBytes => Tensors.Sum(t => t.Format.ByteSize(TensorTypes.ElementCount(t.Shape)));
    public long Parameters => Tensors.Sum(t => TensorTypes.ElementCount(t.Shape));
    public double BitsPerWeight => Parameters == 0 ? 0 : 8.0 * OutputBytes / Parameters;
}

/// <summary>
/// Quantizes a model (Hugging Face folder, GGUF, llama2.c) or a bag of tensors into a GGUF file, one tensor at a
/// time: each tensor is read, converted and written before the next is touched, so peak memory stays near the
/// largest tensor. Every format is checked against every tensor before anything is written.
/// </summary>
public static class ModelQuantizer
{
    /// <summary>Builds the plan (opening the input, choosing and validating every tensor's format).</summary>
    public static (QuantPlan Plan, IDisposable Input) Plan(string input, QuantizeOptions options)
    {
        // llama-quantize's check before it starts: the lowest-bit mixes and types are refused without importance.
        if (!options.HasImportance && QuantPresets.RefusedWithoutImportance(options.Format))
            throw new AnyBitException(QuantPresets.ImportanceRefusal(options.Format));
        if (!QuantPresets.IsPreset(options.Format)) FormatRegistry.Parse(options.Format); // fail fast on a bad spec
        if (options.Pure) options = options with { Format = QuantPresets.PureSpec(options.Format) };
        input = ModelLoader.Resolve(input);
        if (IsBagOfTensors(input)) return PlanBag(input, options);
        var files = ModelLoader.Open(input, new LoadOptions { TokenizerPath = options.TokenizerPath });
        try
        {
            return (PlanModel(files, options), files);
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>Writes the plan to <paramref name="output"/> (through a temporary file).</summary>
    public static void Write(QuantPlan plan, string output, Action<int, int, string>? progress = null, CancellationToken cancellation = default) =>
        WriterFor(plan, output).Write(output, progress, cancellation);

    /// <summary>The length of the file <see cref="Write"/> makes of <paramref name="plan"/>: tensors, metadata and padding.</summary>
    public static long FileBytes(QuantPlan plan) => WriterFor(plan, "(planned file)").Length;

    private static GgufWriter WriterFor(QuantPlan plan, string output)
    {
        var writer = new GgufWriter();
        plan.WriteMetadata(writer);
        // Id 36 means I2_S only under bitnet.cpp's BitNet names (GgufTypeIds): any other file holding it would be unreadable.
        string? arch = writer.PendingMetadata(_ => null, output).GetString("general.architecture");
        if (plan.Tensors.FirstOrDefault(t => t.Format.GgmlType == TensorType.I2_S) is { } i2s && !Architecture.IsBitnetCppName(arch))
            throw new AnyBitException($"cannot write {i2s.Name} as i2_s: bitnet.cpp's type is read in its BitNet files only, and this file's architecture is '{arch ?? "(none)"}'");
        var customIds = new Dictionary<string, uint>();
        foreach (var t in plan.Tensors)
        {
            uint typeId;
            if (t.Format.GgmlType is TensorType g) typeId = (uint)g;
            else
            {
                string spec = FormatRegistry.StorageSpec(t.Format);
                if (!customIds.TryGetValue(spec, out typeId))
                {
                    typeId = (uint)(FormatRegistry.FirstCustomTypeId + customIds.Count);
                    customIds[spec] = typeId;
                    writer.Add(FormatRegistry.TypeKeyPrefix + typeId, spec);
                }
            }
            long elements = TensorTypes.ElementCount(t.Shape);
            int rowLength = (int)t.Shape[^1];
            var format = t.Format;
            var source = t.Source;
            var encoded = t.Encoded;
            writer.AddTensor(t.Name, t.Shape, typeId, format.ByteSize(elements), dst =>
            {
                if (encoded is null) format.Quantize(source(), rowLength, dst);
                else encoded().CopyTo(dst);
            });
        }
        if (customIds.Count > 0) writer.Add("anybit.format_version", 1u);
        if (plan.Tensors.Any(t => t.Format.IsQuantized))
            writer.Add("general.quantization_version", 2u);
        return writer;
    }

    /// <summary>True for a GGUF or safetensors file that holds tensors but no model (no architecture hyperparameters).</summary>
    public static bool IsBagOfTensors(string path)
    {
        if (Directory.Exists(path)) return false;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return true;
        if (File.Exists(path) && MappedFile.LengthOf(path) >= 4 && GgufFile.HasMagic(path))
        {
            // No architecture, or an architecture without its hyperparameters (as in tensor-only fixtures that
            // gguf-py's writer forced to name one): a bag of tensors.
            using var g = GgufFile.Open(path);
            string? arch = g.GetString("general.architecture");
            return arch is null || g.GetInteger($"{arch}.block_count") is null;
        }
        return false;
    }

    private static TensorFormat Resolve(string spec, string name, long rowLength, List<string> problems)
    {
        TensorFormat format;
        try
        {
            format = FormatRegistry.Parse(spec).Bind(rowLength);
        }
        catch (AnyBitException e)
        {
            problems.Add($"{name}: {e.Message}");
            return FormatRegistry.Parse("f32");
        }
        if (format.CheckRowLength(rowLength) is string why)
            problems.Add($"{name}: {why} (formats that fit rows of {rowLength}: {FittingFormats(rowLength)})");
        return format;
    }

    /// <summary>
    /// <see cref="Resolve"/>, with llama-quant.cpp's per-tensor refusal first for plans quantized without importance
    /// (<see cref="QuantizeOptions.HasImportance"/> false): a type that llama.cpp will not quantize without an importance matrix.
    /// </summary>
    private static TensorFormat ResolveWithImportance(string spec, string name, long rowLength, QuantizeOptions options, List<string> problems)
    {
        if (!options.HasImportance && GgmlTypeOf(spec) is TensorType type && QuantPresets.NeedsImportance(type, name, options.Format))
        {
            problems.Add(MissingImportance(name, type, QuantPresets.ImportanceRemedy));
            return FormatRegistry.Parse("f32");
        }
        return Resolve(spec, name, rowLength, problems);
    }

    /// <summary>
    /// llama-quant.cpp's words for a tensor it refuses without importance, and what to do. Importance matrices hold
    /// no embedding, so for it the remedy is another type.
    /// </summary>
    public static string MissingImportance(string name, TensorType type, string remedy) =>
        $"{name}: missing importance matrix for a very low-bit quantization ({type}); " +
        (name == TensorRoles.TokenEmbd.Gguf ? "importance matrices hold none for the embedding: give it another type (--token-embedding-type, or --output-tensor-type when it is also the head)" : remedy);

    /// <summary>The ggml type a spec names ("iq2_xxs"), also for types this build has no row for; null for other specs.</summary>
    internal static TensorType? GgmlTypeOf(string spec)
    {
        string s = spec.Trim();
        return s.Length > 0 && char.IsAsciiLetter(s[0]) && Enum.TryParse<TensorType>(s, ignoreCase: true, out var t) && (int)t < 1000 ? t : null;
    }

    private static string FittingFormats(long rowLength)
    {
        var candidates = new[] { "q8_0", "q6_k", "q4_k", "q4_0", "iq4_nl", "mxfp4", "nvfp4", "nf4:g64", "int4:g128", "int4:g32", "int8:channel", "int4:channel", "e4m3:g32", "e4m3", "f16", "bf16", "f32" };
        return string.Join(", ", candidates.Where(c => FormatRegistry.Parse(c).Bind(rowLength).CheckRowLength(rowLength) is null));
    }

    /// <summary>Throws one line naming the first problems, when there are any.</summary>
    internal static void Check(List<string> problems)
    {
        if (problems.Count == 0) return;
        string shown = string.Join("; ", problems.Take(4)) + (problems.Count > 4 ? $"; and {problems.Count - 4} more" : "");
        throw new AnyBitException($"cannot quantize as asked, nothing was written: {shown}");
    }

    private static QuantPlan PlanModel(ModelFiles files, QuantizeOptions options)
    {
        var c = files.Config;
        var problems = new List<string>();
        var tensors = new List<PlannedTensor>();
        var all = CanonicalNames(c, files.Weights).Select(t => (t.Role, t.Name, Shape: files.Weights.Shape(t.Name))).ToList();
        // A preset's types come from llama.cpp's rules over all the weight matrices at once (they count attn_v and
        // ffn_down tensors as they go).
        var mix = options.Preset is string preset
            ? QuantPresets.Choose(preset, all.Where(t => t.Shape.Length >= 2 && t.Role.IsQuantizable).Select(t => (t.Name, t.Shape)), MixModel.Of(c), options.HasImportance)
            : null;
        foreach (var (role, name, shape) in all)
        {
            long rowLength = shape[^1];
            bool isMatrix = shape.Length >= 2 && role.IsQuantizable;
            bool isEmbedding = role == TensorRoles.TokenEmbd, isOutput = role == TensorRoles.Output || (isEmbedding && c.TiedEmbeddings && !files.Weights.Contains(TensorRoles.Output.Gguf));
            string spec;
            if (!isMatrix || options.KeepFloat.Any(r => r.IsMatch(name))) spec = "f32";
            else
            {
                spec = mix is not null ? QuantPresets.Spec(mix[name]) : options.Format;
                // Ternary formats are for BitNet's linear layers; the embedding and head of such models are trained
                // in full precision, so they stay f16 (exact for bf16 weights) unless asked otherwise.
                if ((isEmbedding || isOutput) && IsTernaryFamily(options.Format)) spec = "f16";
                if (isEmbedding && options.TokenEmbeddingType is string te) spec = te;
                if (isOutput && options.OutputTensorType is string ot) spec = ot;
                foreach (var (pattern, s) in options.TensorTypes)
                    if (pattern.IsMatch(name)) { spec = s; break; }
            }
            var format = ResolveWithImportance(spec, name, rowLength, options, problems);
            bool ternarize = c.Architecture.TernaryWeights && isMatrix && role.IsLayerLinear;
            var weights = files.Weights;
            tensors.Add(new PlannedTensor(name, shape, format, () =>
            {
                var data = weights.ReadFloat32(name);
                if (ternarize) Ternary.TernarizeInPlace(data);
                return data;
            }) { Encoded = AsStored(weights, name, format) });
        }
        if (c.Rope.Scaling == RopeScalingType.Llama3 && !files.Weights.Contains(TensorRoles.RopeFreqs.Gguf))
        {
            var factors = GgufModelMetadata.RopeFrequencyFactors(c);
            tensors.Add(new PlannedTensor(TensorRoles.RopeFreqs.Gguf, [factors.Length], FormatRegistry.Parse("f32"), () => factors));
        }
        if (c.Rope.Scaling == RopeScalingType.LongRope)
            foreach (var (role, factors) in new[] { (TensorRoles.RopeFactorsLong, c.Rope.LongFactors), (TensorRoles.RopeFactorsShort, c.Rope.ShortFactors) })
                if (factors is not null && !files.Weights.Contains(role.Gguf))
                    tensors.Add(new PlannedTensor(role.Gguf, [factors.Length], FormatRegistry.Parse("f32"), () => factors));
        FuseParts(c, tensors);
        // Tensors the family's GGUF files name otherwise (gpt-oss's FFN norm) go back under those names.
        for (int i = 0; i < tensors.Count; i++)
            if (c.Architecture.FileGgufName(tensors[i].Name) is var fileName && fileName != tensors[i].Name) tensors[i] = tensors[i] with { Name = fileName };
        string? sourceArch = files.Gguf?.GetString("general.architecture");
        string? arch = OutputArchitecture(c, sourceArch, tensors, problems);
        Check(problems);
        return new QuantPlan
        {
            Tensors = tensors,
            WriteMetadata = w =>
            {
                if (files.Gguf is { } source)
                {
                    foreach (string key in source.MetadataKeys)
                        if (!key.StartsWith(FormatRegistry.TypeKeyPrefix, StringComparison.Ordinal) && key is not ("general.file_type" or "general.quantization_version" or "general.alignment" or "anybit.format_version"))
                        {
                            // Under another architecture name, the {arch}.* keys move with it.
                            if (arch is null || sourceArch is null) w.AddRaw(key, source.Metadata[key]);
                            else if (key == "general.architecture") w.Add(key, arch);
                            else w.AddRaw(key.StartsWith(sourceArch + ".", StringComparison.Ordinal) ? arch + key[sourceArch.Length..] : key, source.Metadata[key]);
                        }
                }
                else
                {
                    GgufModelMetadata.WriteHyperparameters(w, c, Path.GetFileName(Path.TrimEndingDirectorySeparator(files.Path)), arch);
                    if (files.Tokenizer is not null) GgufModelMetadata.WriteTokenizer(w, files.Tokenizer, c);
                    if (files.ChatTemplateSource is not null) w.Add("tokenizer.chat_template", files.ChatTemplateSource);
                }
                if (QuantPresets.FileType(options.Format) is uint ft) w.Add("general.file_type", ft);
            },
        };
    }

    /// <summary>Ternary formats are for BitNet's linear layers (their kind runs ternary codes, or they are bitnet.cpp's I2_S).</summary>
    private static bool IsTernaryFamily(string spec) =>
        !QuantPresets.IsPreset(spec) && FormatRegistry.Parse(spec) is { Kind.Ternary: true } or { GgmlType: TensorType.I2_S };

    /// <summary>
    /// The <c>general.architecture</c> to write when it is not the input's own (null: keep the input GGUF's, or write
    /// the family's llama.cpp name). A file holding I2_S is bitnet.cpp's: only its fork runs that type, and only under
    /// its BitNet names, where id 36 means I2_S (<see cref="GgufTypeIds"/>), so it gets the name the fork's converter
    /// writes; other families cannot hold I2_S. A file without I2_S made from a bitnet.cpp-only name goes back to the
    /// family's llama.cpp name.
    /// </summary>
    private static string? OutputArchitecture(ModelConfig c, string? sourceArch, List<PlannedTensor> tensors, List<string> problems)
    {
        var a = c.Architecture;
        if (tensors.FirstOrDefault(t => t.Format.GgmlType == TensorType.I2_S) is { } i2s)
        {
            if (a.BitnetCppGgufNames is [string bitnetCpp, ..]) return bitnetCpp == sourceArch ? null : bitnetCpp;
            problems.Add($"{i2s.Name}: i2_s is bitnet.cpp's type for BitNet's ternary layers, which only its BitNet files hold; {a.DisplayName} models cannot use it");
            return null;
        }
        return sourceArch is not null && sourceArch != a.GgufName && a.BitnetCppGgufNames.Contains(sourceArch) ? a.GgufWriteName : null;
    }

    /// <summary>
    /// Fused tensors go back as the family's files hold them (Phi-3's attn_qkv and [2F, D] ffn_up, the only form
    /// llama.cpp loads): the parts' rows concatenated at the first part's place, in the first part's format (the parts
    /// read one input, so they share its importance).
    /// </summary>
    private static void FuseParts(ModelConfig c, List<PlannedTensor> tensors)
    {
        foreach (var fused in c.Architecture.FusedRoles)
            for (int l = 0; l < c.NumLayers; l++)
            {
                int[] at = fused.Parts!.Select(p => tensors.FindIndex(t => t.Name == p.GgufName(l))).ToArray();
                if (at.Any(i => i < 0)) continue;
                var parts = at.Select(i => tensors[i]).ToArray();
                var whole = new PlannedTensor(fused.GgufName(l), [parts.Sum(t => t.Shape[0]), parts[0].Shape[1]], parts[0].Format,
                    () => parts.SelectMany(t => t.Source()).ToArray());
                foreach (int i in at.OrderDescending()) tensors.RemoveAt(i);
                tensors.Insert(at.Min(), whole);
            }
    }

    /// <summary>The architecture's tensors the file holds, in llama.cpp's order (the role table's): token_embd, the blocks, output_norm, output.</summary>
    private static List<(TensorRole Role, int Layer, string Name)> CanonicalNames(ModelConfig c, IModelWeights w) =>
        TensorRoles.InFileOrder(c.Architecture.Roles, c.NumLayers)
            .Where(t => w.Contains(t.Name) && !(t.Role == TensorRoles.Output && c.TiedEmbeddings))
            .ToList();

    /// <summary>
    /// The stored bytes of a tensor already held in <paramref name="format"/>'s AnyBit layout (a GPTQ, AWQ or
    /// compressed-tensors layer asked for as the int format it was repacked to, an AnyBit GGUF's own type), copied
    /// as they are: re-fitting its dequantized values would change them. Null otherwise, and for weights whose
    /// columns are stored permuted.
    /// </summary>
    private static Func<byte[]>? AsStored(IModelWeights weights, string name, TensorFormat format) =>
        weights is StoreWeights store && store.Tensor(name) is { Format: { } stored, InputOrder: null } && stored.StorageName == format.StorageName
            ? () => store.Bytes(name).ToArray()
            : null;

    /// <summary>llama.cpp's general.file_type for the whole-file formats it names.</summary>
    private static (QuantPlan, IDisposable) PlanBag(string input, QuantizeOptions options)
    {
        ITensorStore store = input.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? SafetensorsFile.Open(input) : GgufFile.Open(input);
        try
        {
            var problems = new List<string>();
            var tensors = new List<PlannedTensor>();
            // A bag has no hyperparameters: presets see its blk.N layers and no grouped-query attention.
            var matrices = store.Tensors.Where(t => (t.Format is not null || Formats.FormatTable.HoldsWeights(t.Type)) && t.Shape.Length >= 2)
                .Select(t => (t.Name, t.Shape)).ToList();
            var bagModel = new MixModel(1 + matrices.Select(t => TensorRoles.FromGguf(t.Name) is (_, int l) ? l : 0).DefaultIfEmpty(0).Max(), 1, 1);
            var mixes = new Dictionary<string, Dictionary<string, TensorType>>();
            foreach (var t in store.Tensors)
            {
                bool isFloat = t.Format is not null || Formats.FormatTable.HoldsWeights(t.Type);
                string spec = isFloat && t.Shape.Length >= 2 && !options.KeepFloat.Any(r => r.IsMatch(t.Name)) ? options.Format : "f32";
                // The whole-file spec mixes as a preset; an override does only where it names no single type (q4_k_m).
                string? preset = spec == options.Format ? options.Preset : null;
                foreach (var (pattern, s) in options.TensorTypes)
                    if (isFloat && t.Shape.Length >= 2 && pattern.IsMatch(t.Name))
                    {
                        spec = s;
                        preset = QuantPresets.IsPreset(s) && GgmlTypeOf(s) is null ? s : null;
                        break;
                    }
                if (preset is not null)
                {
                    if (!mixes.TryGetValue(preset, out var mix)) mixes[preset] = mix = QuantPresets.Choose(preset, matrices, bagModel, options.HasImportance);
                    spec = QuantPresets.Spec(mix[t.Name]);
                }
                var format = ResolveWithImportance(spec, t.Name, t.Shape.Length == 0 ? 1 : t.Shape[^1], options, problems);
                if (format.GgmlType == TensorType.I2_S)
                    problems.Add($"{t.Name}: i2_s is bitnet.cpp's type for BitNet models' layers, read in their files only (id 36 is a retired llama.cpp type elsewhere): quantize the model, not a bag of tensors");
                var tensor = t;
                if (!TensorDecoder.CanDecode(t.Type) && t.Format is null) { problems.Add($"{t.Name}: type {t.TypeName} cannot be read"); continue; }
                tensors.Add(new PlannedTensor(t.Name, t.Shape.Length == 0 ? [1] : t.Shape, format, () => tensor.ToFloat32()));
            }
            Check(problems);
            var gguf = store as GgufFile;
            var plan = new QuantPlan
            {
                Tensors = tensors,
                WriteMetadata = w =>
                {
                    if (gguf is not null)
                        foreach (string key in gguf.MetadataKeys)
                            if (!key.StartsWith(FormatRegistry.TypeKeyPrefix, StringComparison.Ordinal) && key is not ("general.alignment" or "general.quantization_version" or "anybit.format_version"))
                                w.AddRaw(key, gguf.Metadata[key]);
                },
            };
            return (plan, store);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
