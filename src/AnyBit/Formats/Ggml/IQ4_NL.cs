using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Kernels.Quantized;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Formats.Ggml;

/// <summary>block_iq4_nl: 32 weights, w = d·kvalues_iq4nl[q]; 4.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BlockIQ4_NL
{
    public Half D;
    public Bytes16 Qs; // 32 4-bit indices (LegacyBlocks layout)
}

/// <summary>
/// IQ4_NL as llama-quantize writes it without an importance matrix: ggml's quantize_iq4_nl, i.e. the x²-weighted
/// least-squares scale refined over 15 trial scales (ntry = 7), then every weight re-mapped to its nearest code.
/// (quantize_row_iq4_nl_ref skips the search and gives different bytes.) On the kernels an index stands for its
/// table value + 128 (<see cref="Kernel.Lut"/>), offset −128.
/// </summary>
internal sealed class IQ4_NL : GgmlBlockFormat<BlockIQ4_NL, IQ4_NL.Kernel>
{
    /// <summary>The 16 code values (kvalues_iq4nl).</summary>
    public static readonly sbyte[] Values = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    public override TensorType Type => TensorType.IQ4_NL;
    public override uint? FileType => 25;
    public override int BlockSize => LegacyBlocks.QK;

    public override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int ntry = 7, QK = LegacyBlocks.QK;
        var values = Values;
        Span<float> weight = stackalloc float[QK];
        Span<int> L = stackalloc int[QK];
        var blocks = MemoryMarshal.Cast<byte, BlockIQ4_NL>(y);
        for (int b = 0; b < blocks.Length; b++)
        {
            var xb = x.Slice(b * QK, QK);
            for (int j = 0; j < QK; j++) weight[j] = xb[j] * xb[j];
            float max = SignedMaxMagnitude(xb, out float amax);
            float scale = 0;
            if (amax >= 1e-15f)
            {
                float d = -max / values[0];
                float id = 1 / d;
                float sumqx = 0, sumq2 = 0;
                for (int j = 0; j < QK; j++)
                {
                    int l = BestIndex(values, id * xb[j]);
                    float q = values[l];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                d = sumq2 > 0 ? sumqx / sumq2 : 0f;
                float best = d * sumqx;
                for (int itry = -ntry; itry <= ntry; itry++)
                {
                    id = (itry + values[0]) / max;
                    sumqx = sumq2 = 0;
                    for (int j = 0; j < QK; j++)
                    {
                        int l = BestIndex(values, id * xb[j]);
                        float q = values[l];
                        float w = weight[j];
                        sumqx += w * q * xb[j];
                        sumq2 += w * q * q;
                    }
                    if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                    {
                        d = sumqx / sumq2;
                        best = d * sumqx;
                    }
                }
                scale = d;
            }
            blocks[b].D = (Half)scale;
            float inv = scale != 0 ? 1 / scale : 0;
            for (int j = 0; j < QK; j++) L[j] = BestIndex(values, inv * xb[j]);
            LegacyBlocks.PackNibbles(L, blocks[b].Qs);
        }
    }

    /// <summary>Index of the code value nearest x in an ascending table (ties go to the larger value).</summary>
    private static int BestIndex(sbyte[] values, float x)
    {
        int n = values.Length;
        if (x <= values[0]) return 0;
        if (x >= values[n - 1]) return n - 1;
        int lo = 0, hi = n - 1;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (x < values[mid]) hi = mid; else lo = mid;
        }
        return x - values[hi - 1] < values[hi] - x ? hi - 1 : hi;
    }

    internal override void DecodeBlock(ReadOnlySpan<byte> bytes, ref DecodedBlock o)
    {
        ref readonly var b = ref MemoryMarshal.AsRef<BlockIQ4_NL>(bytes);
        o.D = (float)b.D;
        LegacyBlocks.UnpackNibbles(b.Qs, o.Codes);
    }

    internal struct Kernel : IKindTraits
    {
        private static readonly byte[] s_lut = Values.Select(v => (byte)(v + 128)).ToArray();
        private static readonly nint s_tables = TableLookup.Create(s_lut, null);
        public static int Bits => 4; public static int SuperBlock => 32; public static int Offset => -128;
        public static SubScaleLayout Layout => SubScaleLayout.None; public static bool HasMins => false; public static bool HalfScale => true;
        public static byte[]? Lut => s_lut;
        public static bool HasLut => true; public static nint Tables => s_tables;
    }
}
