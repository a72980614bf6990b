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
        if (!c.Architecture.AccuracyMethodsApply) return $"rotation is not exact for {c.Architecture.DisplayName} (int8 activations and sub-norms)";
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

        var output = w.OutputIsEmbedding ? new NativeBuffer(w.TokenEmbedding.Float!.Span) : w.Output.F32;
        // The role table says which linears read a normed copy of the stream (their input is a norm's output) and
        // which write into it (attn_output, ffn_down).
        NativeBuffer[] Readers(int l, LinearInput input) =>
            TensorRoles.LayerLinears.Select(r => r.Input == input ? r.LinearOf!(w, l) : null).OfType<LinearWeight>().Select(x => x.F32).ToArray();
        for (int l = 0; l < w.Layers.Length; l++)
        {
            FoldNorm(w.Layers[l].AttnNorm, Readers(l, LinearInput.Attention), d);
            FoldNorm(w.Layers[l].FfnNorm, Readers(l, LinearInput.FeedForward), d);
        }
        FoldNorm(w.OutputNorm, [output], d);

        RotateRows(w.TokenEmbedding.Float!, d, signs);
        RotateRows(output, d, signs);
        for (int l = 0; l < w.Layers.Length; l++)
        {
            foreach (var m in Readers(l, LinearInput.Attention).Concat(Readers(l, LinearInput.FeedForward))) RotateRows(m, d, signs);
            foreach (var m in Readers(l, LinearInput.AttentionOutput).Concat(Readers(l, LinearInput.FeedForwardDown))) RotateColumns(m, d, signs);
            if (w.Layers[l].Bo is not null) RotateRows(w.Layers[l].Bo!, d, signs);
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
