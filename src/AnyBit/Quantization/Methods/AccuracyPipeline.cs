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
            if (files is ModelFiles { Config: { Experts: not null } mc } && (accuracy.Rotate || accuracy.NeedsCalibration))
                throw new AnyBitException($"calibrated methods (GPTQ, AWQ, rotation, --target-bpw) do not handle Mixture-of-Experts layers yet; {mc.Architecture.DisplayName} models quantize with plain formats and presets");
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
                ImportanceFor(name, importance, stats) is float[] imp && imp.Length == shapes[name][^1] ? imp : null;
            string? mixedPlan = null;
            if (accuracy.TargetBitsPerWeight is not null || accuracy.TargetBytes is not null)
            {
                status?.Invoke("measuring per-tensor sensitivity for the mixed-precision plan");
                var chosen = MixedPrecisionPlanner.Choose(model, formats, shapes, accuracy, windows!, ImportanceOf, status, cancellation);
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

            var factors = new Dictionary<(int, LinearInput), (double[] Factor, bool[] Dead, int[]? Order)>();
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
                if (accuracy.Gptq && accuracy.GptqOptions.Sequential && reads is (int seqLayer, LinearInput seqKind) && format.IsQuantized)
                {
                    jobs.Add(new SequentialGptq.Job(tensors.Count, name, seqLayer, seqKind, buffer, format, rows, cols));
                }
                else if (accuracy.Gptq && reads is (int layer, LinearInput kind) && format.IsQuantized)
                {
                    var key = (layer, kind);
                    planned = planned with
                    {
                        Encoded = () =>
                        {
                            if (!factors.TryGetValue(key, out var f))
                            {
                                var h = stats!.For(layer, kind).Hessian;
                                int[]? order = accuracy.GptqOptions.ActOrder ? Gptq.ActOrder(h, cols) : null;
                                var factor = Gptq.InverseHessianFactor(h, cols, accuracy.GptqOptions.Damping, order, out var dead);
                                factors[key] = f = (factor, dead, order);
                            }
                            var w = buffer.Span.ToArray();
                            // Types llama.cpp only quantizes with importance round each block weighted by it.
                            var columnWeights = format.GgmlType is TensorType t && QuantPresets.NeedsImportance(t, name, options.Format) ? ImportanceOf(name) : null;
                            IColumnRounder rounder = format is IntFormat fmt ? new IntColumnRounder(fmt, rows, cols) : new BlockColumnRounder(format, rows, cols, columnWeights);
                            Gptq.Quantize(w, rows, cols, f.Factor, f.Dead, f.Order, rounder, accuracy.GptqOptions, cancellation);
                            return rounder.Encode();
                        },
                    };
                }
                else if (format is IntFormat intFormat && format.IsQuantized && ImportanceFor(name, importance, stats) is float[] imp && imp.Length == cols)
                {
                    planned = planned with { Encoded = () => WeightedRounding.Quantize(intFormat, buffer.Span.ToArray(), rows, cols, imp) };
                }
                else if (format.UsesImportance && ImportanceFor(name, importance, stats) is float[] channels && channels.Length == cols)
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

    private static float[]? ImportanceFor(string name, Dictionary<string, float[]>? imatrix, ActivationStatistics? stats)
    {
        if (imatrix is not null && imatrix.TryGetValue(name, out var imp)) return imp;
        if (stats is not null && InputOf(name) is (int layer, LinearInput kind)) return stats.For(layer, kind).Importance();
        return null;
    }

    private static bool IsModelTensor(string name) => TensorRoles.FromGguf(name) is { Role.HeldByModel: true };

    /// <summary>Which calibration input a weight reads: the role table's input of a linear weight, by GGUF name.</summary>
    public static (int Layer, LinearInput Input)? InputOf(string name) =>
        TensorRoles.FromGguf(name) is ({ Input: LinearInput input }, int layer) ? (layer, input) : null;

    /// <summary>The float32 buffer holding a tensor of the loaded model, by GGUF name.</summary>
    public static NativeBuffer BufferOf(TransformerWeights w, string name) =>
        TensorRoles.FromGguf(name) is (TensorRole role, int layer) && role.Float32Of(w, layer) is { } buffer
            ? buffer
            : throw new AnyBitException($"the accuracy pipeline does not know tensor '{name}'");
}
