using AnyBit.Kernels;
using AnyBit.Models;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// Incoherence processing for outliers (QuaRot / QuIP#): the residual stream is rotated by Q = H·D/√d (a Hadamard
/// matrix times random signs), which spreads outlier channels over all channels so that low-bit formats lose less.
/// The rotation is folded into the weights exactly — the model computes the same function with no extra work at
/// inference: RMSNorm weights are first folded into the linears that read them (norms become 1, and an RMSNorm
/// without weight commutes with any rotation), then embeddings and the linears that read the stream get W·Q,
/// and the linears that write it get Qᵀ·W. Needs a power-of-two hidden size and float activations (not BitNet).
/// </summary>
public static class Rotation
{
    public static string? WhyNot(ModelConfig c)
    {
        if (c.Architecture == Architecture.BitNet) return "rotation is not exact for BitNet (int8 activations and sub-norms)";
        if (!Hadamard.IsPowerOfTwo(c.HiddenSize)) return $"rotation needs a power-of-two hidden size; this model has {c.HiddenSize}";
        return null;
    }

    /// <summary>Rotates <paramref name="w"/> in place; unties the output head from the embedding when they are shared.</summary>
    public static TransformerWeights Apply(ModelConfig c, TransformerWeights w, ulong seed)
    {
        if (WhyNot(c) is string why) throw new AnyBitException(why);
        int d = c.HiddenSize;
        var rng = new Random(unchecked((int)seed ^ 0x5bd1e995));
        var signs = Enumerable.Range(0, d).Select(_ => rng.Next(2) == 0 ? 1f : -1f).ToArray();

        var output = w.OutputIsEmbedding ? new NativeBuffer(w.TokenEmbedding.Span) : w.Output.F32;
        foreach (var layer in w.Layers)
        {
            FoldNorm(layer.AttnNorm, [layer.Wq.F32, layer.Wk.F32, layer.Wv.F32], d);
            FoldNorm(layer.FfnNorm, [layer.WGate.F32, layer.WUp.F32], d);
        }
        FoldNorm(w.OutputNorm, [output], d);

        RotateRows(w.TokenEmbedding, d, signs);
        RotateRows(output, d, signs);
        foreach (var layer in w.Layers)
        {
            foreach (var m in new[] { layer.Wq.F32, layer.Wk.F32, layer.Wv.F32, layer.WGate.F32, layer.WUp.F32 }) RotateRows(m, d, signs);
            RotateColumns(layer.Wo.F32, d, signs);
            RotateColumns(layer.WDown.F32, d, signs);
            if (layer.Bo is not null) RotateRows(layer.Bo, d, signs);
        }
        return new TransformerWeights
        {
            TokenEmbedding = w.TokenEmbedding,
            Layers = w.Layers,
            OutputNorm = w.OutputNorm,
            Output = new LinearWeight(output),
            RopeFreqFactors = w.RopeFreqFactors,
        };
    }

    /// <summary>W[:, i] *= g[i] for each matrix reading the norm's output; then g = 1.</summary>
    private static void FoldNorm(NativeBuffer norm, NativeBuffer[] readers, int d)
    {
        var g = norm.Span;
        foreach (var m in readers)
        {
            var s = m.Span;
            for (long r = 0; r < s.Length / d; r++)
                for (int i = 0; i < d; i++) s[(int)(r * d + i)] *= g[i];
        }
        g.Fill(1f);
    }

    /// <summary>Each row v (length d) becomes v·Q = (v·H/√d)·D.</summary>
    private static void RotateRows(NativeBuffer m, int d, float[] signs)
    {
        var s = m.Span;
        float scale = 1f / MathF.Sqrt(d);
        Parallel.For(0, s.Length / d, r =>
        {
            var row = m.Slice((long)r * d, d);
            Hadamard.Transform(row);
            for (int i = 0; i < d; i++) row[i] *= scale * signs[i];
        });
    }

    /// <summary>Each column c (length d) of a [d, in] matrix becomes Qᵀ·c = D·H·c/√d.</summary>
    private static void RotateColumns(NativeBuffer m, int d, float[] signs)
    {
        int cols = (int)(m.Length / d);
        float scale = 1f / MathF.Sqrt(d);
        var s = m.Span.ToArray();
        Parallel.For(0, cols, c =>
        {
            var column = new float[d];
            for (int i = 0; i < d; i++) column[i] = s[(long)i * cols + c];
            Hadamard.Transform(column);
            for (int i = 0; i < d; i++) s[(long)i * cols + c] = column[i] * scale * signs[i];
        });
        s.CopyTo(m.Span);
    }
}
