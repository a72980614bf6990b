using AnyBit.Formats;
using AnyBit.IO;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Quantization;

/// <summary>
/// A learned non-uniform code per group: 2^k centroids (k = 1..4) fitted to the group's values by 1-D k-means, and
/// a k-bit index per weight. Block layout: 2^k fp16 centroids in ascending order, then the indices bit-packed.
/// k-means is Lloyd's algorithm from quantile initialisation (centroid i starts at the value of rank (i+½)/2^k),
/// at most 25 rounds, assignment to the nearest centroid with ties to the lower one; centroids are rounded to fp16
/// before the final assignment so that encoding uses exactly the stored values. Deterministic.
/// </summary>
public sealed class CodebookFormat : TensorFormat
{
    public CodebookFormat(int bits, int groupSize)
    {
        if (bits is < 1 or > 4) throw new AnyBitException($"cb{bits}: codebooks have 1 to 4 bits");
        if (groupSize < 1 << bits) throw new AnyBitException($"cb{bits}: group size {groupSize} must be at least {1 << bits}");
        Bits = bits; GroupSize = groupSize;
    }

    public int Bits { get; }
    public int GroupSize { get; }
    private int Centroids => 1 << Bits;
    public override string Name => $"cb{Bits}:g{GroupSize}";
    public override TensorType? GgmlType => null;
    public override int BlockSize => GroupSize;
    public override int BytesPerBlock => 2 * Centroids + BitPacking.PackedBytes(GroupSize, Bits);

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        var centroids = new float[Centroids];
        var codes = new int[GroupSize];
        var sorted = new float[GroupSize];
        for (int g = 0; g < row.Length / GroupSize; g++)
        {
            var x = row.Slice(g * GroupSize, GroupSize);
            var block = dst.Slice(g * BytesPerBlock, BytesPerBlock);
            Fit(x, sorted, centroids, codes);
            for (int c = 0; c < Centroids; c++) WriteHalf(block, 2 * c, centroids[c]);
            BitPacking.Pack(codes, Bits, block[(2 * Centroids)..]);
        }
    }

    private void Fit(ReadOnlySpan<float> x, float[] sorted, float[] centroids, int[] codes)
    {
        int k = Centroids, n = x.Length;
        x.CopyTo(sorted);
        Array.Sort(sorted);
        for (int c = 0; c < k; c++) centroids[c] = sorted[Math.Min(n - 1, (int)((c + 0.5) * n / k))];
        var sums = new double[k];
        var counts = new int[k];
        for (int round = 0; round < 25; round++)
        {
            bool changed = Assign(x, centroids, codes, round == 0);
            if (!changed && round > 0) break;
            Array.Clear(sums);
            Array.Clear(counts);
            for (int i = 0; i < n; i++) { sums[codes[i]] += x[i]; counts[codes[i]]++; }
            for (int c = 0; c < k; c++) if (counts[c] > 0) centroids[c] = (float)(sums[c] / counts[c]);
            Array.Sort(centroids);
        }
        for (int c = 0; c < k; c++) centroids[c] = RoundTripHalf(centroids[c]);
        Array.Sort(centroids);
        Assign(x, centroids, codes, true);
    }

    private static bool Assign(ReadOnlySpan<float> x, float[] centroids, int[] codes, bool force)
    {
        bool changed = force;
        for (int i = 0; i < x.Length; i++)
        {
            int best = 0;
            float bestErr = MathF.Abs(x[i] - centroids[0]);
            for (int c = 1; c < centroids.Length; c++)
            {
                float err = MathF.Abs(x[i] - centroids[c]);
                if (err < bestErr) { best = c; bestErr = err; }
            }
            if (codes[i] != best) { codes[i] = best; changed = true; }
        }
        return changed;
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<float> centroids = stackalloc float[Centroids];
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        for (int g = 0; g < dst.Length / GroupSize; g++)
        {
            var block = src.Slice(g * BytesPerBlock, BytesPerBlock);
            for (int c = 0; c < Centroids; c++) centroids[c] = ReadHalf(block, 2 * c);
            BitPacking.Unpack(block[(2 * Centroids)..], Bits, codes);
            for (int i = 0; i < GroupSize; i++) dst[g * GroupSize + i] = centroids[codes[i]];
        }
    }

    /// <summary>Runs on the float path (dequantized at load).</summary>
    internal override Kernels.Quantized.PackedKind? Kind => null;

    /// <summary>cb{1..4}[:g{N}] (also kmeans{k}).</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 6;
        public override string Forms => "cb{1..4}[:g{N}] (k-means codebook per group, default g128)";
        public override IReadOnlyList<string> Examples => ["cb4:g128", "cb2:g64", "cb1:g32"];

        public override TensorFormat? TryParse(string head, FormatOptions options)
        {
            string digits = head.StartsWith("cb", StringComparison.Ordinal) ? head[2..] : head.StartsWith("kmeans", StringComparison.Ordinal) ? head[6..] : "";
            if (digits.Length == 0 || !digits.All(char.IsAsciiDigit)) return null;
            if (digits.Length > 2) throw new AnyBitException($"{head}: {digits} bits is out of range");
            return new CodebookFormat(int.Parse(digits, System.Globalization.CultureInfo.InvariantCulture), options.TakeGroup() ?? 128);
        }
    }
}
