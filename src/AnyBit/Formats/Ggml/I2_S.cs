using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using AnyBit.Models;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// One I2_S block as dequantize_row_i2_s reads it: 128 ternary codes in 32 bytes, byte j holding elements j, 32 + j,
/// 64 + j and 96 + j at bits 6, 4, 2 and 0. bitnet.cpp's fork declares no block struct (its type_traits say block 1,
/// 1 byte, and ggml_nbytes special-cases I2_S as n/4 + 32); this is the block its dequantizer and x86 kernels walk.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockI2_S
{
    public Bytes32 Qs;
}

/// <summary>
/// bitnet.cpp's I2_S (GGML_TYPE_I2_S = 36 in its llama.cpp fork; mainline's 36 is the retired IQ4_NL_4_4, and
/// <see cref="GgufTypeIds"/> decides which a file means): ternary weights at 2 bits, code 0, 1, 2 = −1, 0, +1 (3 is
/// never written and reads as 0), and one float32 scale per tensor, stored after the codes at byte n/4 in a 32-byte
/// tail. w = scale · {−1, 0, +1, 0}[code], as dequantize_row_i2_s computes it.
/// <para>
/// The layout is the one of bitnet.cpp's Python converter (quantize_to_i2_s), its published GGUF files and its x86
/// builds (QK_I2_S = 128, ACT_PARALLEL): blocks run over the flattened tensor. Its kernels address row r at byte
/// r·ne0/4 and run whole blocks, so rows are whole blocks (128 weights). llama-quantize in an ARM build (QK_I2_S = 64,
/// 16-byte groups) or a build tuned without ACT_PARALLEL (four rows per byte) writes other layouts under the same id,
/// which nothing in the file marks.
/// </para>
/// <para>
/// The scale is per tensor, so this format quantizes and dequantizes whole tensors; it runs on the float path, and
/// BitNet models decode it to ternary floats at load, which the loader packs into the ternary kernel's TQ2_0 codes
/// with the scale applied to the product (<see cref="Ternary.Pack"/>): the same W1.58A8 product as bitnet.cpp's
/// (int8 activations per token, absmax).
/// </para>
/// </summary>
internal sealed class I2_S : Quantization.GgmlFormat
{
    private const int Block = 128, Trailer = 32;
    private static readonly float[] Map2Bit = [-1f, 0f, 1f, 0f];

    public override TensorType Type => TensorType.I2_S;
    /// <summary>LLAMA_FTYPE_MOSTLY_I2_S in bitnet.cpp's fork (its converter writes 40 too).</summary>
    public override uint? FileType => 40;
    public override int BlockSize => Block;
    public override int BytesPerBlock => Unsafe.SizeOf<BlockI2_S>();
    public override int TensorTrailerBytes => Trailer;
    internal override PackedKind? Kind => null;

    /// <summary>One row as a tensor of one row (its own scale and tail).</summary>
    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst) => Quantize(row, row.Length, dst);

    /// <summary>
    /// quantize_i2_s (ggml-bitnet-mad.cpp, x86 ACT_PARALLEL path): scale = max|x| in double, code 1 where |x| &lt; 1e-6,
    /// else 2 or 0 by sign; the float scale at byte n/4, the rest of the tail zero (as the Python converter writes it).
    /// quantize_i2_s maps every nonzero value to ±max|x|: it expects weights its converter already ternarized by
    /// absmean (weight_quant). A tensor that is not ternary yet gets that step here first (<see cref="Ternary.TernarizeInPlace"/>),
    /// so the bytes are llama-quantize's from bitnet.cpp's f32 GGUF.
    /// </summary>
    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst)
    {
        int n = tensor.Length;
        if (n % Block != 0) throw new ArgumentException($"I2_S tensors are whole blocks of {Block} weights, not {n}", nameof(tensor));
        if (dst.Length != n / 4 + Trailer) throw new ArgumentException($"{n} I2_S weights take {n / 4 + Trailer} bytes, not {dst.Length}", nameof(dst));
        ReadOnlySpan<float> x = tensor;
        if (!Ternary.IsTernary(tensor, out _))
        {
            var ternary = tensor.ToArray();
            Ternary.TernarizeInPlace(ternary);
            x = ternary;
        }
        double max = 0;
        foreach (float v in x)
        {
            double a = Math.Abs((double)v);
            if (a > max) max = a; // fmax: a NaN never becomes the maximum
        }
        dst.Clear();
        for (int i = 0; i < n / Block; i++)
            for (int j = 0; j < Block; j++)
            {
                double v = x[i * Block + j];
                int q = Math.Abs(v) < 1e-6 ? 1 : v * max > 0 ? 2 : 0;
                dst[i * 32 + j % 32] |= (byte)(q << (6 - 2 * (j / 32)));
            }
        BinaryPrimitives.WriteSingleLittleEndian(dst.Slice(n / 4), (float)max);
    }

    /// <summary>A whole tensor: its blocks and its tail (<paramref name="dst"/> holds the tensor's weights).</summary>
    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        if (n % Block != 0 || src.Length != n / 4 + Trailer)
            throw new ArgumentException($"an I2_S tensor of {n} weights is {n / Block} blocks of {Block} and a {Trailer}-byte tail ({n / 4 + Trailer} bytes), not {src.Length}");
        float scale = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(n / 4));
        for (int b = 0; b < n / Block; b++)
        {
            var qs = src.Slice(b * 32, 32);
            var y = dst.Slice(b * Block, Block);
            for (int gp = 0; gp < 32; gp++)
                for (int k = 0; k < 4; k++) y[k * 32 + gp] = scale * Map2Bit[(qs[gp] >> (6 - 2 * k)) & 3];
        }
    }
}
