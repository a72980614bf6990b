namespace AnyBit.Kernels.Quantized;

/// <summary>
/// The scalar definition of the integer kernels, read straight from the ggml bytes (not the repacked layout):
/// per super-block isum = Σ₁₆ sc·(Σ code·x + offset·Σx) − z·Σx and imin = Σ₁₆ m·Σx in exact integers, then
/// y += isum·(d·dx) and y −= imin·(dmin·dx) in float32, each a fused multiply-add (one rounding). Every SIMD path
/// must reproduce it bit for bit.
/// </summary>
internal static unsafe class ReferenceKernel
{
    public static float Row(PackedMatrix m, int row, QuantizedActivations a, int token)
    {
        var kind = m.Kind;
        int sb = kind.SuperBlock, blockBytes = kind.BlockBytes;
        Span<byte> codes = stackalloc byte[sb];
        Span<int> scales = stackalloc int[sb / 16], mins = stackalloc int[sb / 16];
        sbyte* x = a.Codes(token);
        float* xs = a.Scales(token);
        short* sums = a.Sums16(token);
        float acc = 0;
        for (int s = 0; s < m.SuperBlocks; s++)
        {
            var block = new DecodedBlock { Codes = codes, Scales16 = scales, Mins16 = mins };
            BlockDecoder.Decode(kind, m.Source.Slice((int)(((long)row * m.SuperBlocks + s) * blockBytes), blockBytes), ref block);
            int isum = 0, imin = 0;
            for (int h = 0; h < sb / 16; h++)
            {
                int dot = 0;
                for (int i = 0; i < 16; i++)
                {
                    dot += kind.Unsigned(codes[16 * h + i]) * x[s * sb + 16 * h + i];
                }
                int xsum = sums[s * sb / 16 + h];
                isum += scales[h] * (dot + kind.Offset * xsum);
                imin += mins[h] * xsum;
            }
            if (block.Zero != 0)
            {
                int total = 0;
                for (int h = 0; h < sb / 16; h++) total += sums[s * sb / 16 + h];
                isum -= block.Zero * total;
            }
            float dx = xs[s];
            // Fused (one rounding each): the SIMD kernels' vfmadd, one instruction where a multiply and an add were two.
            acc = MathF.FusedMultiplyAdd(isum, block.D * dx, acc);
            if (kind.HasMins) acc = MathF.FusedMultiplyAdd(-imin, block.DMin * dx, acc);
        }
        return acc;
    }
}
