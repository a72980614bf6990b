using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq1_m: 256 weights in 16 blocks of 16, each 2 groups of 8 on the grid (<see cref="IQ1Grid"/>):
/// w = d·(2s + 1)·(g + δ), g ∈ {−1, 0, 1}, a 3-bit s per 16 and δ = ±IQ1M_DELTA per group of 8; 1.75 bits per weight.
/// It has no d field: the f16 d (iq1m_scale_t) is spread over the top nibbles of the four uint16 of scales.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ1_M
{
    public Bytes32 Qs;     // grid index of group k of block ib (16 weights), low 8 bits: byte 2ib + k
    public Bytes16 Qh;     // block ib: bits 0-2 / 4-6 the high 3 bits of group 0's / 1's index, bit 3 / 7 its δ < 0
    public Bytes8 Scales;  // as 4 uint16: block ib's s at bits 3·(ib % 4) of word ib/4; bits 12-15 of word w: d's nibble w
}

/// <summary>
/// IQ1_M as quantize_iq1_m writes it: with an importance matrix, or (as ggml does, where llama-quantize refuses all
/// but token_embd.weight and output.weight) with x² as the weights. Its integer form is IQ1_S's (<see cref="IQ1_S"/>,
/// <see cref="Kernel"/>), with a sub-scale of its own per 16; it runs on the float path for the same reason.
/// </summary>
internal sealed class IQ1_M : GgmlBlockFormat<BlockIQ1_M, IQ1_M.Kernel>
{
    public override TensorType Type => TensorType.IQ1_M;
    public override uint? FileType => 31; // LLAMA_FTYPE_MOSTLY_IQ1_M
    public override int BlockSize => KQuantFits.QK_K;
    protected override bool HasKernel => false;

    public override bool UsesImportance => true;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => throw new NotImplementedException();

    /// <summary>d, from the top nibble of each of the four uint16 scale words (dequantize_row_iq1_m's scale.u16).</summary>
    private static float Scale(ReadOnlySpan<ushort> sc) =>
        (float)BitConverter.UInt16BitsToHalf((ushort)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ1_M>(bytes);
        ReadOnlySpan<byte> qs = b.Qs, qh = b.Qh;
        var sc = MemoryMarshal.Cast<byte, ushort>((ReadOnlySpan<byte>)b.Scales);
        o.D = Scale(sc) / 8;
        var grid = IQ1Grid.Points;
        for (int ib = 0; ib < 16; ib++)
        {
            o.Scales16[ib] = 2 * ((sc[ib / 4] >> (3 * (ib % 4))) & 7) + 1;
            for (int k = 0; k < 2; k++)
            {
                int h = qh[ib] >> (4 * k);
                ulong point = grid[qs[2 * ib + k] | ((h & 7) << 8)];
                int code = 32 + ((h & 8) != 0 ? -1 : 1);
                var c = o.Codes.Slice(16 * ib + 8 * k, 8);
                for (int j = 0; j < 8; j++) c[j] = (byte)(code + 8 * (sbyte)(point >> (8 * j)));
            }
        }
    }

    /// <summary>IQ1_S's integer form: see <see cref="IQ1_S.Kernel"/>.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
    }
}
