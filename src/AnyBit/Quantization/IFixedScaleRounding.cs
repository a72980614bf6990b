namespace AnyBit.Quantization;

/// <summary>
/// A block format whose representable values at a position, once a quantized block's parameters (scales, mins) are
/// fixed, are a scalar set: code k at position i stands for step·level[k] − shift, evaluated in float as the
/// format's dequantizer does, with step and shift per 16 positions. What GPTQ with static groups needs
/// (<see cref="Methods.FixedScaleRounder"/>): fit each block's parameters once with the format's own quantizer, round
/// every weight to the nearest value under them, and store exactly those codes with those parameters. The lattice
/// i-quants (a grid point per 4 or 8 weights) are not scalar and lack it.
/// </summary>
public interface IFixedScaleRounding
{
    /// <summary>Each code's level, ascending in the code (code k stands for level[k]).</summary>
    float[] Levels { get; }

    /// <summary>
    /// Reads one quantized block: step and shift per 16 positions (<see cref="TensorFormat.BlockSize"/>/16 each) and
    /// every position's code.
    /// </summary>
    void ReadBlock(ReadOnlySpan<byte> block, Span<float> step16, Span<float> shift16, Span<byte> codes);

    /// <summary>Writes every position's code into a quantized block, its parameters kept.</summary>
    void WriteCodes(Span<byte> block, ReadOnlySpan<byte> codes);
}
