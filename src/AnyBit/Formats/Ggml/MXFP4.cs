using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_mxfp4: 32 weights, w = kvalues_mxfp4[q]·2^(e − 128) (E2M1 doubled, E8M0 scale halved); 4.25 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockMXFP4
{
    public byte E;     // E8M0 scale
    public Bytes16 Qs; // 32 4-bit indices (LegacyBlocks layout)
}

/// <summary>
/// MXFP4 as ggml writes it: e = floor(log2 amax) − 2 + 127, each weight the nearest doubled-E2M1 value times
/// 2^(e − 128), ties to the lower index. On the kernels an index stands for its value + 12, offset −12.
/// </summary>
internal sealed class MXFP4 : GgmlBlockFormat<BlockMXFP4, MXFP4.Kernel>
{
    /// <summary>The 16 code values: E2M1 doubled (kvalues_mxfp4).</summary>
    public static readonly sbyte[] Values = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    public override TensorType Type => TensorType.MXFP4;
    public override uint? FileType => null; // llama.cpp's MXFP4 file type is its MoE mix, not a plain MXFP4 file
    public override int BlockSize => LegacyBlocks.QK;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<int> q = stackalloc int[LegacyBlocks.QK];
        var blocks = MemoryMarshal.Cast<byte, BlockMXFP4>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * LegacyBlocks.QK, LegacyBlocks.QK);
            float amax = 0;
            foreach (float v in xb) if (amax < MathF.Abs(v)) amax = MathF.Abs(v);
            byte e = amax > 0 ? (byte)(int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
            float d = E8M0Half(e);
            blocks[b].E = e;
            for (int j = 0; j < LegacyBlocks.QK; j++) q[j] = Nearest(xb[j], d);
            LegacyBlocks.PackNibbles(q, blocks[b].Qs);
        }
    }

    private static int Nearest(float x, float e)
    {
        int best = 0;
        float bestErr = MathF.Abs(Values[0] * e - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(Values[i] * e - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockMXFP4>(bytes);
        o.D = E8M0Half(b.E);
        LegacyBlocks.UnpackNibbles(b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        private static readonly byte[] s_lut = Values.Select(v => (byte)(v + 12)).ToArray();
        private static readonly nint s_tables = TableLookup.Create(s_lut, null);
        public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -12;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false;
        public static byte[]? Lut => s_lut;
        public static bool HasLut => true; public static nint Tables => s_tables; public static int MaxTableEntry => 24;
    }
}
