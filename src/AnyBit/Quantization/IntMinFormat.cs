using AnyBit.Formats;
using AnyBit.IO;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Quantization;

/// <summary>
/// k-bit integers (k = 2..8) with a float minimum (<c>int{k}:g{N}:min</c>): per group an fp16 scale s and an fp16
/// minimum m, then the N codes bit-packed (<see cref="BitPacking"/>); value = s·code + m, with
/// s = (max − min)/(2^k − 1), m = min, code = clamp(round((x − m)/s), 0, 2^k − 1) against the stored fp16 s and m
/// (half to even). q4_1's layout at any width and group, and KIVI's quantizer. Unlike <see cref="IntFormat"/>'s
/// asymmetric form, whose zero point is an integer code (so its grid always holds 0), the range may lie wholly on
/// one side of zero: what a key channel with a steady offset needs when it is quantized along tokens.
/// Runs on the float path (no integer kernel binding).
/// </summary>
public sealed class IntMinFormat : TensorFormat
{
    public int Bits { get; }
    public int GroupSize { get; }
    /// <summary>One group per row (<c>:channel</c>), resolved by <see cref="Bind"/>.</summary>
    public bool PerChannel { get; }

    public IntMinFormat(int bits, int groupSize, bool perChannel = false)
    {
        if (bits is < 2 or > 8) throw new AnyBitException($"int{bits}:min: bits must be 2..8");
        if (groupSize < 1) throw new AnyBitException($"int{bits}:min: group size {groupSize} must be positive");
        Bits = bits; GroupSize = groupSize; PerChannel = perChannel;
    }

    public override string Name => $"int{Bits}:" + (PerChannel ? "channel" : $"g{GroupSize}") + ":min";
    public override string StorageName => $"int{Bits}:g{GroupSize}:min";
    public override TensorType? GgmlType => null;
    public override int BlockSize => GroupSize;
    public override int BytesPerBlock => 4 + BitPacking.PackedBytes(GroupSize, Bits);
    public override TensorFormat Bind(long rowLength) => PerChannel ? new IntMinFormat(Bits, (int)rowLength) : this;
    internal override Kernels.Quantized.PackedKind? Kind => null;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        int qmax = (1 << Bits) - 1;
        for (int g = 0; g < row.Length / GroupSize; g++)
        {
            var x = row.Slice(g * GroupSize, GroupSize);
            var block = dst.Slice(g * BytesPerBlock, BytesPerBlock);
            float min = float.MaxValue, max = float.MinValue;
            foreach (float v in x) { min = MathF.Min(min, v); max = MathF.Max(max, v); }
            float s = RoundTripHalf((max - min) / qmax), m = RoundTripHalf(min);
            float inv = s != 0 ? 1f / s : 0f;
            for (int i = 0; i < GroupSize; i++) codes[i] = Math.Clamp(NearestInt((x[i] - m) * inv), 0, qmax);
            WriteHalf(block, 0, s);
            WriteHalf(block, 2, m);
            BitPacking.Pack(codes, Bits, block[4..]);
        }
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        for (int g = 0; g < dst.Length / GroupSize; g++)
        {
            var block = src.Slice(g * BytesPerBlock, BytesPerBlock);
            float s = ReadHalf(block, 0), m = ReadHalf(block, 2);
            BitPacking.Unpack(block[4..], Bits, codes);
            var y = dst.Slice(g * GroupSize, GroupSize);
            for (int i = 0; i < GroupSize; i++) y[i] = s * codes[i] + m;
        }
    }
}
