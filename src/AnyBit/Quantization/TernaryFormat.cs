using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// BitNet b1.58 ternary weights with one scale per tensor — s = mean|W| (absmean, as BitNet trains) or max|W|
/// (absmax) — stored losslessly in ggml's TQ1_0 or TQ2_0 layout with every block's d = s, so llama.cpp reads the
/// file. (ggml's own TQ quantizers use a per-block absmax; on an already ternary tensor they give the same codes.)
/// </summary>
public sealed class TernaryFormat : TensorFormat
{
    public TernaryFormat(bool absmean, TensorType packing)
    {
        if (packing is not (TensorType.TQ1_0 or TensorType.TQ2_0)) throw new ArgumentException("packing must be TQ1_0 or TQ2_0");
        AbsMean = absmean; Packing = packing;
    }

    public bool AbsMean { get; }
    public TensorType Packing { get; }
    public override string Name => "ternary:" + (AbsMean ? "absmean" : "absmax") + (Packing == TensorType.TQ1_0 ? ":tq1_0" : "");
    public override TensorType? GgmlType => Packing;
    public override int BlockSize => 256;
    public override int BytesPerBlock => Row.BytesPerBlock;

    /// <summary>The per-tensor scale.</summary>
    public float TensorScale(ReadOnlySpan<float> w)
    {
        if (AbsMean)
        {
            double sum = 0;
            foreach (float v in w) sum += MathF.Abs(v);
            return MathF.Max((float)(sum / Math.Max(1, w.Length)), 1e-5f);
        }
        float amax = 0;
        foreach (float v in w) amax = MathF.Max(amax, MathF.Abs(v));
        return amax;
    }

    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst)
    {
        float s = TensorScale(tensor);
        // Ternarize, then let the TQ packer see blocks whose absmax is s (an all-zero block keeps d = 0).
        var ternary = new float[tensor.Length];
        for (int i = 0; i < tensor.Length; i++)
            ternary[i] = s == 0 ? 0 : Math.Clamp(MathF.Round(tensor[i] / s, MidpointRounding.ToEven), -1f, 1f) * s;
        for (int b = 0; b < tensor.Length / 256; b++)
            QuantizeRow(ternary.AsSpan(b * 256, 256), dst.Slice(b * BytesPerBlock, BytesPerBlock));
    }

    /// <summary>The ggml type whose blocks hold the codes.</summary>
    private TensorFormat Row => FormatTable.ByType(Packing)!;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) => Row.QuantizeRow(row, dst);
    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst) => Row.Dequantize(src, dst);

    /// <summary>The packing type's kind: the files are ggml's.</summary>
    internal override Kernels.Quantized.PackedKind? Kind => Row.Kind;

    /// <summary>ternary[:absmean|:absmax][:tq1_0|:tq2_0].</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 5;
        public override string Forms => "ternary[:absmean|:absmax][:tq1_0|:tq2_0]";
        public override IReadOnlyList<string> Examples => ["ternary", "ternary:absmax:tq1_0"];

        public override TensorFormat? TryParse(string head, FormatOptions options)
        {
            if (head != "ternary") return null;
            bool absmean = !options.Take("absmax");
            options.Take("absmean");
            var packing = options.Take("tq1_0") ? TensorType.TQ1_0 : TensorType.TQ2_0;
            options.Take("tq2_0");
            return new TernaryFormat(absmean, packing);
        }
    }
}
