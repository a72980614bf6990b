using AnyBit.IO;
using AnyBit.Kernels;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// Quantization with the accuracy algorithms: the model is loaded in float32, in memory and in llama.cpp's tensor
/// conventions, straight from the plan's sources (<see cref="FloatModel"/>), transformed (rotation, AWQ scales),
/// calibrated, optionally given a mixed-precision plan, and each linear weight is then encoded with GPTQ or
/// round-to-nearest in its format.
/// Plain options (round-to-nearest, nothing else) take <see cref="ModelQuantizer"/>'s streaming path.
/// </summary>
public static class AccuracyPipeline
{
    public static (QuantPlan Plan, IDisposable Resources) Plan(string input, QuantizeOptions options, AccuracyOptions accuracy,
        Action<string>? status = null, CancellationToken cancellation = default)
    {
        if (accuracy.IsPlain) return ModelQuantizer.Plan(input, options);
        if (accuracy.NeedsCalibration && accuracy.CalibrationFile is null)
            throw new AnyBitException($"{(accuracy.Gptq || accuracy.Awq ? accuracy.MethodName : "mixed precision (--target-bpw, --target-size)")} needs calibration text: pass --calibration FILE");
        // An importance matrix, or calibration statistics, weight the rounding: the plan may then hold the types
        // llama.cpp refuses without one, and each such tensor is checked below for its importance.
        bool hasImportance = accuracy.ImatrixFile is not null || accuracy.NeedsCalibration;
        var (plan0, files) = ModelQuantizer.Plan(input, options with { HasImportance = options.HasImportance || hasImportance });
        Transformer? model = null;
        try
        {
            // AWQ and rotation transform the norm ahead of a linear and the linear together; in a Mixture-of-Experts
            // layer that norm feeds the router and every expert, which they do not handle yet.
            if (files is ModelFiles { Config: { Experts: not null } mc } && (accuracy.Rotate || accuracy.Awq))
                throw new AnyBitException($"AWQ and rotation do not handle Mixture-of-Experts layers yet; {mc.Architecture.DisplayName} models quantize with GPTQ, --target-bpw, plain formats and presets");
            status?.Invoke("loading float weights");
            model = FloatModel.Load(plan0, input);
            // Tensors the runtime does not hold (rope_freqs.weight) are read now, before the input closes.
            var extras = plan0.Tensors.Where(t => !IsModelTensor(t.Name)).ToDictionary(t => t.Name, t => t.Source());
            files.Dispose();
            cancellation.ThrowIfCancellationRequested();
            var c = model.Config;
            if (!c.Architecture.AccuracyMethodsApply && (accuracy.Gptq || accuracy.Awq || accuracy.Rotate))
                throw new AnyBitException($"GPTQ, AWQ and rotation are for float-activation models; {c.Architecture.DisplayName}'s weights are ternarized as trained");

            var weights = model.Weights;
            if (accuracy.Rotate)
            {
                status?.Invoke("rotating the residual stream");
                weights = Rotation.Apply(c, weights, accuracy.Seed);
                model = new Transformer(c, weights, model.Tokenizer, model.Activations, model.Source) { ChatTemplate = model.ChatTemplate };
            }
            // The output tensors: the input plan's, plus the head when rotation untied it from the embedding.
            var formats = plan0.Tensors.ToDictionary(t => t.Name, t => t.Format);
            var shapes = plan0.Tensors.ToDictionary(t => t.Name, t => t.Shape);
            var names = plan0.Tensors.Select(t => t.Name).ToList();
            string embd = TensorRoles.TokenEmbd.Gguf, output = TensorRoles.Output.Gguf;
            if (!formats.ContainsKey(output) && !weights.OutputIsEmbedding)
            {
                formats[output] = formats[embd];
                shapes[output] = shapes[embd];
                names.Add(output);
            }
            // Each expert of a 3-D expert tensor is its own unit from here on (ExpertUnits): calibrated on the tokens
            // routed to it, planned and encoded on its own; Regroup joins units of one format into the 3-D tensor again.
            var stackedShapes = new Dictionary<string, long[]>();
            if (c.Experts is not null)
            {
                var units = new List<string>();
                foreach (string n in names)
                {
                    if (ExpertUnits.Stacked(n) is not (TensorRole role, int layer)) { units.Add(n); continue; }
                    var s3 = shapes[n];
                    stackedShapes[n] = s3;
                    for (int e = 0; e < s3[0]; e++)
                    {
                        string u = role.ExpertName(layer, e);
                        units.Add(u);
                        formats[u] = formats[n];
                        shapes[u] = [s3[1], s3[2]];
                    }
                    formats.Remove(n);
                    shapes.Remove(n);
                }
                names = units;
            }
            int expertCount = c.Experts?.Count ?? 0;

            ActivationStatistics? stats = null;
            int[][]? windows = null;
            if (accuracy.NeedsCalibration)
            {
                var tokenizer = model.Tokenizer ?? throw new AnyBitException("calibration needs the model's tokenizer");
                windows = CalibrationText.Sample(tokenizer, accuracy.CalibrationFile!, accuracy.CalibrationWindows,
                    Math.Min(accuracy.CalibrationLength, c.MaxPositions), accuracy.Seed);
                status?.Invoke($"calibrating on {windows.Length} windows of {windows[0].Length} tokens");
                stats = ActivationStatistics.Collect(model, windows, null, cancellation);
            }
            if (accuracy.Awq)
            {
                status?.Invoke("searching AWQ scales");
                var scales = AwqScaling.Apply(c, weights, stats!, name => formats[name], null, cancellation);
                foreach (var ((layer, inputKind), s) in scales) AwqScaling.Rescale(stats!.For(layer, inputKind), s);
            }
            var importance = accuracy.ImatrixFile is not null ? ImportanceMatrix.Read(accuracy.ImatrixFile) : null;
            float[]? ImportanceOf(string name) =>
                ImportanceFor(name, importance, stats, expertCount) is float[] imp && imp.Length == shapes[name][^1] ? imp : null;
            string? mixedPlan = null;
            if (accuracy.TargetBitsPerWeight is not null || accuracy.TargetBytes is not null)
            {
                status?.Invoke("measuring per-tensor sensitivity for the mixed-precision plan");
                // A size budget is the file's: the header, metadata and padding of the planned file leave the tensors
                // less, and so does what the plan adds (its list of choices, an expert per tensor where experts differ).
                var budget = accuracy.TargetBytes is long target
                    ? accuracy with { TargetBytes = target - (ModelQuantizer.FileBytes(plan0) - plan0.OutputBytes) - PlanMetadataBound(shapes, expertCount) }
                    : accuracy;
                var chosen = MixedPrecisionPlanner.Choose(model, formats, shapes, budget, windows!, ImportanceOf, status, cancellation,
                    name => ExpertUnits.InputOf(name) is (int l, _, int e) ? stats!.RoutedTokens(l, e) : 0);
                foreach (var (name, f) in chosen) formats[name] = f;
                mixedPlan = string.Join(",", chosen.Select(kv => $"{kv.Key}={kv.Value.Name}"));
            }
            // llama-quant.cpp's per-tensor refusal: a type it will not quantize without importance, for a tensor that
            // has none (the embedding is never in an importance matrix; a matrix may lack a tensor).
            var missing = names
                .Where(n => formats[n].GgmlType is TensorType t && QuantPresets.NeedsImportance(t, n, options.Format) && ImportanceOf(n) is null)
                .Select(n => ModelQuantizer.MissingImportance(n, formats[n].GgmlType!.Value,
                    importance is not null ? "the importance matrix has no entry for it"
                    : stats is not null ? "calibration gives none for it; pass --imatrix FILE" : QuantPresets.ImportanceRemedy))
                .ToList();
            ModelQuantizer.Check(missing);

            var factors = new Dictionary<(int, LinearInput, int), (double[] Factor, bool[] Dead, int[]? Order)>();
            var unrouted = new List<string>();
            var latticeRounded = new List<string>();
            var tensors = new List<PlannedTensor>();
            var jobs = new List<SequentialGptq.Job>();
            foreach (string name in names)
            {
                long[] shape = shapes[name];
                var format = formats[name].Bind(shape[^1]);
                if (extras.TryGetValue(name, out var extra))
                {
                    tensors.Add(new PlannedTensor(name, shape, format, () => extra));
                    continue;
                }
                var buffer = BufferOf(weights, name);
                var planned = new PlannedTensor(name, shape, format, () => buffer.Span.ToArray());
                int rows = (int)(TensorTypes.ElementCount(shape) / shape[^1]), cols = (int)shape[^1];
                var reads = InputOf(name) ?? (name == embd && weights.OutputIsEmbedding ? (-1, LinearInput.Output) : null);
                // As llama-quantize: an imatrix entry that does not fit its matrix is an error (an imatrix of another
                // model), except for the token embedding. Expert tensors (3-D) are not weighted yet.
                if (importance is not null && importance.TryGetValue(name, out var named) && named.Length != cols && shape.Length == 2 && name != embd)
                    throw new AnyBitException($"importance matrix has {named.Length} values for {name}, which has {cols} columns");
                // GPTQ's Hessian: a dense input's, or an expert's over the tokens routed to it; an expert calibration never
                // routed a token to has none and is rounded to nearest (reported).
                var expertInput = ExpertUnits.InputOf(name);
                // A format GPTQ cannot round weight by weight (the lattice i-quants) is rounded to nearest with importance (reported).
                bool gptqRounds = accuracy.Gptq && format.IsQuantized && ColumnRounders.Supports(format);
                if (accuracy.Gptq && format.IsQuantized && !gptqRounds) latticeRounded.Add(name);
                InputStatistics? gptqStats = !gptqRounds ? null
                    : reads is (int hl, LinearInput hk) ? stats!.For(hl, hk)
                    : expertInput is (int el, LinearInput ek, int ex) ? stats!.ForExpert(el, ek, ex) : null;
                if (gptqRounds && expertInput is not null && gptqStats is null) unrouted.Add(name);
                if (gptqRounds && accuracy.GptqOptions.Sequential && reads is (int seqLayer, LinearInput seqKind))
                {
                    jobs.Add(new SequentialGptq.Job(tensors.Count, name, seqLayer, seqKind, buffer, format, rows, cols, ImportanceOf(name)));
                }
                else if (gptqStats is { } inputStats)
                {
                    var key = reads is (int l, LinearInput k) ? (l, k, -1) : expertInput!.Value;
                    planned = planned with
                    {
                        Encoded = () =>
                        {
                            if (!factors.TryGetValue(key, out var f))
                            {
                                var h = inputStats.Hessian;
                                int[]? order = accuracy.GptqOptions.ActOrder ? Gptq.ActOrder(h, cols) : null;
                                var factor = Gptq.InverseHessianFactor(h, cols, accuracy.GptqOptions.Damping, order, out var dead);
                                factors[key] = f = (factor, dead, order);
                            }
                            var w = buffer.Span.ToArray();
                            var rounder = ColumnRounders.For(format, w, rows, cols, ImportanceOf(name));
                            Gptq.Quantize(w, rows, cols, f.Factor, f.Dead, f.Order, rounder, accuracy.GptqOptions, cancellation);
                            return rounder.Encode();
                        },
                    };
                }
                else if (format is IntFormat intFormat && format.IsQuantized && ImportanceFor(name, importance, stats, expertCount) is float[] imp && imp.Length == cols)
                {
                    planned = planned with { Encoded = () => WeightedRounding.Quantize(intFormat, buffer.Span.ToArray(), rows, cols, imp) };
                }
                else if (format.UsesImportance && ImportanceFor(name, importance, stats, expertCount) is float[] channels && channels.Length == cols)
                {
                    planned = planned with
                    {
                        Encoded = () =>
                        {
                            var bytes = new byte[format.ByteSize(rows * (long)cols)];
                            format.Quantize(buffer.Span, cols, bytes, channels);
                            return bytes;
                        },
                    };
                }
                tensors.Add(planned);
            }
            if (latticeRounded.Count > 0)
                status?.Invoke($"GPTQ: {latticeRounded.Count} tensor(s) in formats it cannot round weight by weight (lattice i-quants) rounded to nearest with importance: {string.Join(", ", latticeRounded)}");
            if (unrouted.Count > 0)
                status?.Invoke($"GPTQ: calibration routed no token to {unrouted.Count} expert tensor(s), rounded to nearest instead: {string.Join(", ", unrouted)}");
            tensors = Regroup(tensors, stackedShapes);
            if (jobs.Count > 0)
            {
                var encoded = SequentialGptq.Run(model, windows!, jobs, accuracy.GptqOptions, status, cancellation);
                foreach (var job in jobs)
                {
                    var bytes = encoded[job.Name];
                    tensors[job.Index] = tensors[job.Index] with { Encoded = () => bytes };
                }
            }
            string method = accuracy.MethodName;
            var final = new QuantPlan
            {
                Tensors = tensors,
                WriteMetadata = w =>
                {
                    plan0.WriteMetadata(w);
                    // A mixed plan is no single llama.cpp file type: without the key, llama.cpp guesses it from the tensors.
                    if (mixedPlan is not null) w.Remove("general.file_type");
                    w.Add("anybit.quantization.method", method);
                    if (mixedPlan is not null) w.Add("anybit.quantization.plan", mixedPlan);
                    if (accuracy.CalibrationFile is not null) w.Add("anybit.quantization.calibration", Path.GetFileName(accuracy.CalibrationFile));
                },
            };
            return (final, model);
        }
        catch
        {
            model?.Dispose();
            files.Dispose();
            throw;
        }
    }

    private static float[]? ImportanceFor(string name, Dictionary<string, float[]>? imatrix, ActivationStatistics? stats, int experts)
    {
        if (imatrix is not null && imatrix.TryGetValue(name, out var imp)) return imp;
        if (ExpertUnits.InputOf(name) is (int layer_, LinearInput kind_, int expert))
        {
            // llama.cpp's imatrix holds a 3-D expert tensor's importance as its experts' vectors one after another.
            if (imatrix is not null && imatrix.TryGetValue(ExpertUnits.StackedOf(name)!, out var all) && experts > 0 && all.Length % experts == 0)
                return all.AsSpan(expert * (all.Length / experts), all.Length / experts).ToArray();
            return stats?.ForExpert(layer_, kind_, expert)?.Importance();
        }
        if (stats is not null && InputOf(name) is (int layer, LinearInput kind)) return stats.For(layer, kind).Importance();
        return null;
    }

    private static bool IsModelTensor(string name) => TensorRoles.FromGguf(name) is { Role.HeldByModel: true };

    /// <summary>Which calibration input a weight reads: the role table's input of a linear weight, by GGUF name.</summary>
    public static (int Layer, LinearInput Input)? InputOf(string name) =>
        TensorRoles.FromGguf(name) is ({ Input: LinearInput input }, int layer) ? (layer, input) : null;

    /// <summary>
    /// Joins the expert units of each 3-D tensor that ended with one format into that tensor again (their encodings,
    /// row-wise, one after another, are the 3-D tensor's); units of mixed formats stay apart, under their per-expert names.
    /// </summary>
    private static List<PlannedTensor> Regroup(List<PlannedTensor> tensors, Dictionary<string, long[]> stackedShapes)
    {
        if (stackedShapes.Count == 0) return tensors;
        var groups = tensors.Where(t => ExpertUnits.StackedOf(t.Name) is not null).GroupBy(t => ExpertUnits.StackedOf(t.Name)!)
            .ToDictionary(g => g.Key, g => g.ToList());
        var result = new List<PlannedTensor>();
        foreach (var t in tensors)
        {
            if (ExpertUnits.StackedOf(t.Name) is not string stacked) { result.Add(t); continue; }
            var units = groups[stacked];
            if (units.Select(u => u.Format.Name).Distinct().Count() > 1) { result.Add(t); continue; }
            if (!ReferenceEquals(units[0], t)) continue;
            Func<float[]> source = () => units.SelectMany(u => u.Source()).ToArray();
            Func<byte[]>? encoded = units.All(u => u.Encoded is null) ? null : () => units.SelectMany(u =>
            {
                if (u.Encoded is { } enc) return enc();
                var bytes = new byte[u.Format.ByteSize(TensorTypes.ElementCount(u.Shape))];
                u.Format.Quantize(u.Source(), (int)u.Shape[^1], bytes);
                return bytes;
            }).ToArray();
            result.Add(new PlannedTensor(stacked, stackedShapes[stacked], t.Format, source) { Encoded = encoded });
        }
        return result;
    }

    /// <summary>The float32 buffer holding a tensor of the loaded model, by GGUF name (an expert unit by its per-expert name).</summary>
    /// <summary>
    /// A bound on the bytes a mixed plan adds to the file beyond the input plan's: its "name=format," list (format names
    /// under 32 characters) and, for a 3-D expert tensor whose experts differ, each expert's list entry, tensor info
    /// (name, dimensions, type, offset) and alignment padding; plus room for the method's keys.
    /// </summary>
    private static long PlanMetadataBound(IReadOnlyDictionary<string, long[]> shapes, int experts) =>
        4096 + shapes.Sum(kv => kv.Value.Length == 3 && experts > 0 ? kv.Value[0] * (3L * kv.Key.Length + 160) : kv.Key.Length + 34L);

    public static NativeBuffer BufferOf(TransformerWeights w, string name) =>
        ExpertUnits.Parse(name) is not null ? ExpertUnits.BufferOf(w, name)
        : TensorRoles.FromGguf(name) is (TensorRole role, int layer) && role.Float32Of(w, layer) is { } buffer
            ? buffer
            : throw new AnyBitException($"the accuracy pipeline does not know tensor '{name}'");
}
