using System.Buffers.Binary;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// bitsandbytes' 4-bit lookup-table types. Block layout: float32 absmax, then 4-bit codes two per byte with the
/// first element in the high nibble (bitsandbytes' order, the reverse of ggml's). Quantization normalises by the
/// block's absmax, clamps to ±1 and picks the code whose value is nearest; a value exactly between two codes goes
/// to the lower one (torch.bucketize on the midpoints).
/// </summary>
public sealed class LookupTableFormat : TensorFormat
{
    /// <summary>NormalFloat4 code values (bitsandbytes get_4bit_type("nf4")), in code order.</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>bitsandbytes FP4 (E2M1 with bias) code values in bit-pattern order: [0, .0625, 8, 12, 4, 6, 2, 3, −…]/12.</summary>
    public static readonly float[] Fp4 = new float[] { 0, 0.0625f, 8, 12, 4, 6, 2, 3, -0f, -0.0625f, -8, -12, -4, -6, -2, -3 }
        .Select(v => v / 12f).ToArray();

    private readonly float[] _values;
    private readonly (float Value, int Code)[] _sorted;

    public LookupTableFormat(string kind, int groupSize)
    {
        Table = kind;
        _values = kind switch { "nf4" => Nf4, "fp4" => Fp4, _ => throw new AnyBitException($"unknown lookup table '{kind}'") };
        // Ascending values; for the two zeros of FP4 keep the first (positive) code.
        _sorted = _values.Select((v, c) => (v, c)).GroupBy(p => p.v).Select(g => g.First()).OrderBy(p => p.v).ToArray();
        GroupSize = groupSize;
        if (groupSize % 2 != 0) throw new AnyBitException($"{kind}: group size {groupSize} must be even");
    }

    /// <summary>"nf4" or "fp4".</summary>
    public string Table { get; }
    public int GroupSize { get; }
    public override string Name => $"{Table}:g{GroupSize}";
    public override TensorType? GgmlType => null;
    public override int BlockSize => GroupSize;
    public override int BytesPerBlock => 4 + GroupSize / 2;

    private int Code(float normalized)
    {
        int i = 0;
        while (i + 1 < _sorted.Length && normalized > (_sorted[i].Value + _sorted[i + 1].Value) / 2) i++;
        return _sorted[i].Code;
    }

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        for (int g = 0; g < row.Length / GroupSize; g++)
        {
            var x = row.Slice(g * GroupSize, GroupSize);
            var block = dst.Slice(g * BytesPerBlock, BytesPerBlock);
            float amax = 0;
            foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
            BinaryPrimitives.WriteSingleLittleEndian(block, amax);
            for (int i = 0; i < GroupSize; i += 2)
            {
                float a = amax != 0 ? Math.Clamp(x[i] / amax, -1f, 1f) : 0f;
                float b = amax != 0 ? Math.Clamp(x[i + 1] / amax, -1f, 1f) : 0f;
                block[4 + i / 2] = (byte)((Code(a) << 4) | Code(b));
            }
        }
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        for (int g = 0; g < dst.Length / GroupSize; g++)
        {
            var block = src.Slice(g * BytesPerBlock, BytesPerBlock);
            float amax = BinaryPrimitives.ReadSingleLittleEndian(block);
            for (int i = 0; i < GroupSize; i += 2)
            {
                byte b = block[4 + i / 2];
                dst[g * GroupSize + i] = _values[b >> 4] * amax;
                dst[g * GroupSize + i + 1] = _values[b & 0xF] * amax;
            }
        }
    }

    private Kernels.Quantized.PackedKind? _kind;

    /// <summary>Groups the kernels are compiled for run as the book's integer levels (<see cref="Kernels.Quantized.LevelBook"/>).</summary>
    internal override Kernels.Quantized.PackedKind? Kind => !Kernels.Quantized.KernelGroups.Sizes.Contains(GroupSize) ? null
        : _kind ??= Kernels.Quantized.BookBindings.Kind(this, Table == "nf4" ? Kernels.Quantized.LevelBook.Nf4 : Kernels.Quantized.LevelBook.BnbFp4, e8m0: false);

    /// <summary>bitsandbytes' layout: float32 absmax, two indices per byte, the first in the high nibble. D is the
    /// absmax over the book's integer scale, so D·level reproduces the format's values.</summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> b, ref Kernels.Quantized.DecodedBlock o)
    {
        var c = o.Codes;
        o.D = BinaryPrimitives.ReadSingleLittleEndian(b) / Kind!.Book!.Scale;
        for (int i = 0; i < GroupSize; i += 2) { c[i] = (byte)(b[4 + i / 2] >> 4); c[i + 1] = (byte)(b[4 + i / 2] & 15); }
    }

    /// <summary>nf4[:g{N}] and fp4[:g{N}].</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 1;
        public override string Forms => "nf4[:g{N}] and fp4[:g{N}] (default g64)";
        public override IReadOnlyList<string> Examples => ["nf4:g64", "fp4:g128", "nf4:g256", "fp4:g32", "nf4:g16"];
        public override TensorFormat? TryParse(string head, FormatOptions options) =>
            head is "nf4" or "fp4" ? new LookupTableFormat(head, options.TakeGroup() ?? 64) : null;
    }
}
