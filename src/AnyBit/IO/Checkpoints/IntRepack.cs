using AnyBit.Quantization;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// Writes a checkpoint's integer weight, w[o, i] = s·(q − z) with one (s, z) per group of input columns, as an
/// AnyBit <see cref="IntFormat"/> tensor holding the same values: the codes and zero points as they are, the scales
/// as fp16 where every one is an fp16 value, else as float32 (<c>:f32</c>). Groups the kernels do not run (one scale
/// per row, or a size they are not compiled for) are split into the largest compiled size that divides them, each
/// part repeating its group's scale and zero.
/// </summary>
internal static class IntRepack
{
    /// <param name="source">the file, for errors</param>
    /// <param name="name">the tensor's name (<c>PREFIX.weight</c>)</param>
    /// <param name="rows">output features</param>
    /// <param name="columns">input features</param>
    /// <param name="bits">bits per code</param>
    /// <param name="group">input columns per checkpoint group, in stored order (columns for one scale per row)</param>
    /// <param name="code">q at (row, stored column)</param>
    /// <param name="scale">s at (row, checkpoint group)</param>
    /// <param name="zero">z at (row, checkpoint group)</param>
    /// <param name="inputOrder">stored column k holds input column inputOrder[k]; null for input order</param>
    public static StoredTensor Build(string source, string name, int rows, int columns, int bits, int group,
        Func<int, int, int> code, Func<int, int, float> scale, Func<int, int, int> zero, int[]? inputOrder)
    {
        int symmetricZero = 1 << (bits - 1);
        // AnyBit's symmetric 1-bit codes are signs (±s), not s·(code − 1): one bit stays asymmetric.
        bool symmetric = bits > 1, halfScales = true;
        int groups = columns / group;
        for (int r = 0; r < rows && (symmetric || halfScales); r++)
            for (int g = 0; g < groups; g++)
            {
                symmetric &= zero(r, g) == symmetricZero;
                float s = scale(r, g);
                halfScales &= (float)(Half)s == s || float.IsNaN(s);
            }
        int stored = KernelGroup(group);
        var format = new IntFormat(bits, stored, symmetric, ScaleScope.Group, floatScale: !halfScales);
        int blocks = columns / stored, blockBytes = format.BytesPerBlock;
        long rowBytes = (long)blocks * blockBytes;
        var file = MappedFile.InMemory(source, rows * rowBytes);
        try
        {
            Parallel.For(0, rows, () => new int[stored], (r, _, codes) =>
            {
                for (int b = 0; b < blocks; b++)
                {
                    int g = b * stored / group;
                    for (int i = 0; i < stored; i++) codes[i] = code(r, b * stored + i);
                    format.WriteBlock(scale(r, g), zero(r, g), codes, file.Writable(r * rowBytes + (long)b * blockBytes, blockBytes));
                }
                return codes;
            }, _ => { });
        }
        catch
        {
            file.Dispose();
            throw;
        }
        return new StoredTensor(name, [rows, columns], (TensorType)FormatRegistry.FirstCustomTypeId, file, 0, file.Length, format)
        {
            InputOrder = inputOrder,
        };
    }

    /// <summary>The group size stored: the checkpoint's where the kernels run it, else the largest compiled size
    /// dividing it, else the checkpoint's (the float path runs it).</summary>
    internal static int KernelGroup(int group)
    {
        var sizes = Kernels.Quantized.KernelGroups.Sizes;
        if (sizes.Contains(group)) return group;
        foreach (int s in sizes.OrderDescending())
            if (group % s == 0) return s;
        return group;
    }
}
