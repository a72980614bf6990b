using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Formats.Ggml;

/// <summary>
/// block_iq1_s: 256 weights in 8 blocks of 32, each 4 groups of 8 on the grid (<see cref="IQ1Grid"/>):
/// w = d·(2s + 1)·(g + δ), g ∈ {−1, 0, 1}, δ = ±IQ1S_DELTA per block; 1.5625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ1_S
{
    public Half D;
    public Bytes32 Qs;  // grid index of group k of block ib, low 8 bits: byte 4ib + k
    public UInt16s8 Qh; // block ib: bits 3k..3k+2 the high 3 bits of group k's index, 12-14 the scale s, 15 δ < 0
}

/// <summary>
/// IQ1_S as quantize_iq1_s writes it, which needs an importance matrix (llama.cpp refuses the type without one).
/// Its integer form (<see cref="Kernel"/>): codes 32 + 8g ± 1 (offset −32), a sub-scale 2s + 1 per 16 and d/8 as the
/// block scale — exact, since 8·(g + δ) is an integer and d/8 loses nothing in float32. That is Q6_K's layout with a
/// float32 block scale; the 16-row kernels read every signed-sub-scale kind's d as f16 (d/8 is not always an f16),
/// so it runs on the float path until they read float32 as well.
/// </summary>
internal sealed class IQ1_S : GgmlBlockFormat<BlockIQ1_S, IQ1_S.Kernel>
{
    public override TensorType Type => TensorType.IQ1_S;
    public override uint? FileType => 24; // LLAMA_FTYPE_MOSTLY_IQ1_S
    public override int BlockSize => KQuantFits.QK_K;
    protected override bool HasKernel => false;

    public override bool UsesImportance => true;
    public override bool RequiresImportance => true; // ggml_quantize_requires_imatrix(GGML_TYPE_IQ1_S)

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y) => throw NeedsImportance();

    /// <summary>The whole-tensor form fails once, before any row (not once per row in parallel).</summary>
    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst) => throw NeedsImportance();

    private static AnyBitException NeedsImportance() =>
        new("IQ1_S needs an importance matrix (--imatrix): llama.cpp refuses to quantize to this very low-bit type without one, as the result would be garbage");

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ1_S>(bytes);
        o.D = (float)b.D / 8;
        ReadOnlySpan<byte> qs = b.Qs;
        ReadOnlySpan<ushort> qh = b.Qh;
        var grid = IQ1Grid.Points;
        for (int ib = 0; ib < 8; ib++)
        {
            int h = qh[ib];
            o.Scales16[2 * ib] = o.Scales16[2 * ib + 1] = 2 * ((h >> 12) & 7) + 1;
            int code = 32 + ((h & 0x8000) != 0 ? -1 : 1);
            for (int l = 0; l < 4; l++)
            {
                ulong point = grid[qs[4 * ib + l] | (((h >> (3 * l)) & 7) << 8)];
                var c = o.Codes.Slice(32 * ib + 8 * l, 8);
                for (int j = 0; j < 8; j++) c[j] = (byte)(code + 8 * (sbyte)(point >> (8 * j)));
            }
        }
    }

    /// <summary>Q6_K's layout (6-bit codes, offset −32, a signed sub-scale per 16) with a float32 d.</summary>
    internal struct Kernel : IKindTraits
    {
        public static int Bits => 6; public static int SuperBlock => 256; public static int Offset => -32;
        public static SubScaleLayout Layout => SubScaleLayout.Signed16; public static bool HasMins => false;
    }
}
