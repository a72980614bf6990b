using AnyBit.Quantization;
using AnyBit.Quantization.Methods;

namespace AnyBit.Tests;

/// <summary>
/// GPTQ with static groups for the scalar block formats (<see cref="FixedScaleRounder"/>): the parameters are the
/// format's own importance-weighted fit, the bytes decode to exactly the values GPTQ chose, and the error feedback
/// lowers the layer's output error below round-to-nearest under the same parameters.
/// </summary>
public class FixedScaleRounderTests
{
    public static TheoryData<string> Formats => new() { "q4_0", "q5_0", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs" };

    private const int Rows = 8, Columns = 512;

    private static float[] Importance(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, Columns).Select(_ => (float)(0.05 + rng.NextDouble() * rng.NextDouble() * 4)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Levels_ascend_and_GPTQ_rounds_these_formats_but_not_the_lattice_ones(string name)
    {
        var levels = ((IFixedScaleRounding)FormatRegistry.Parse(name)).Levels;
        for (int k = 1; k < levels.Length; k++) Assert.True(levels[k] > levels[k - 1]);
        Assert.False(FormatRegistry.Parse("iq2_xs") is IFixedScaleRounding);
        Assert.False(FormatRegistry.Parse("iq3_s") is IFixedScaleRounding);
        // GPTQ rounds these formats itself; the lattice ones the pipeline rounds to nearest.
        Assert.True(ColumnRounders.Supports(FormatRegistry.Parse(name)));
        Assert.False(ColumnRounders.Supports(FormatRegistry.Parse("iq3_xxs")));
    }

    /// <summary>
    /// With an identity Hessian GPTQ feeds no error forward, so the result is the format's own importance-weighted
    /// quantization: the same parameters, and the same code at every position except where the format chose its code
    /// against its unrounded float scale and another value is strictly nearer under the stored one.
    /// </summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void Without_error_feedback_it_is_the_formats_own_quantizer(string name)
    {
        var format = FormatRegistry.Parse(name);
        var grid = (IFixedScaleRounding)format;
        var (w0, _) = GptqTests.RandomLayer(Rows, Columns, 11);
        var importance = Importance(12);
        var h = new double[Columns * Columns];
        for (int i = 0; i < Columns; i++) h[i * Columns + i] = 1;
        var factor = Gptq.InverseHessianFactor(h, Columns, 0.0, null, out var dead);
        var rounder = new FixedScaleRounder(format, w0, Rows, Columns, importance);
        var w = (float[])w0.Clone();
        Gptq.Quantize(w, Rows, Columns, factor, dead, null, rounder, new GptqOptions(0.0));
        var ours = rounder.Encode();
        var theirs = new byte[ours.Length];
        format.Quantize(w0, Columns, theirs, importance);

        int n = format.BlockSize, bytes = format.BytesPerBlock, differ = 0;
        var ourCodes = new byte[n];
        var theirCodes = new byte[n];
        var step = new float[n / 16];
        var shift = new float[n / 16];
        var levels = grid.Levels;
        for (int b = 0; b < ours.Length / bytes; b++)
        {
            grid.ReadBlock(ours.AsSpan(b * bytes, bytes), step, shift, ourCodes);
            grid.ReadBlock(theirs.AsSpan(b * bytes, bytes), step, shift, theirCodes);
            // Their block with our codes written in is our block: the parameters are the format's.
            var block = theirs.AsSpan(b * bytes, bytes).ToArray();
            grid.WriteCodes(block, ourCodes);
            Assert.Equal(ours.AsSpan(b * bytes, bytes).ToArray(), block);
            for (int i = 0; i < n; i++)
            {
                if (ourCodes[i] == theirCodes[i]) continue;
                differ++;
                float x = w0[b * n + i];
                float Value(byte c) => step[i / 16] * levels[c] - shift[i / 16];
                Assert.True(MathF.Abs(x - Value(ourCodes[i])) < MathF.Abs(x - Value(theirCodes[i])), $"{name} block {b} position {i}");
            }
        }
        // The K-quants re-map every weight against the stored scales, as the rounder does.
        if (name.EndsWith("_k")) Assert.Equal(0, differ);
        else Assert.True(differ < w0.Length / 20, $"{name}: {differ} codes differ");
    }

    /// <summary>On a layer with correlated inputs: the bytes decode to the values GPTQ chose, and its output error is below RTN's under the same parameters.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void Error_feedback_lowers_the_output_error_and_the_bytes_hold_its_values(string name)
    {
        var format = FormatRegistry.Parse(name);
        var (w0, h) = GptqTests.RandomLayer(Rows, Columns, 21);
        var importance = Enumerable.Range(0, Columns).Select(i => (float)h[i * Columns + i]).ToArray();
        var factor = Gptq.InverseHessianFactor(h, Columns, 0.01, null, out var dead);
        var rounder = new FixedScaleRounder(format, w0, Rows, Columns, importance);
        var w = (float[])w0.Clone();
        Gptq.Quantize(w, Rows, Columns, factor, dead, null, rounder, new GptqOptions());
        var decoded = new float[w.Length];
        format.Dequantize(rounder.Encode(), decoded);
        Assert.Equal(w, decoded);

        var rtn = new FixedScaleRounder(format, w0, Rows, Columns, importance);
        var nearest = new float[w0.Length];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Columns; c++) nearest[r * Columns + c] = rtn.Round(r, c, w0[r * Columns + c]);
        double gptq = GptqTests.OutputError(w0, w, h, Rows, Columns), round = GptqTests.OutputError(w0, nearest, h, Rows, Columns);
        Assert.True(gptq < 0.95 * round, $"{name}: GPTQ {gptq:g4}, RTN {round:g4}");
    }
}
