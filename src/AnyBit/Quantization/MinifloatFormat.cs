using AnyBit.Formats;
using AnyBit.IO;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Quantization;

/// <summary>
/// Weights as minifloat codes (any ExMy) with an fp16 scale per group (or per row): s = absmax / max_finite, so the
/// group's largest magnitude lands on the format's largest value; each x/s is rounded to nearest-even with
/// saturation. Block layout: fp16 s, then the (1+E+M)-bit codes bit-packed. With <see cref="FloatScale"/>
/// (<c>:f32</c>) s is stored as float32: FP8 checkpoints' scales (<c>e4m3fn:g32:f32</c>, 36 bytes a block of 32,
/// which the float tiles read as stored).
/// </summary>
public sealed class MinifloatFormat : TensorFormat
{
    public Minifloat Element { get; }
    public int GroupSize { get; }
    public bool PerChannel { get; }
    /// <summary>The scale is stored as float32, not fp16.</summary>
    public bool FloatScale { get; }

    public MinifloatFormat(Minifloat element, int groupSize, bool perChannel, bool floatScale = false)
    {
        if (!element.Signed) throw new AnyBitException($"{element.Name} has no sign bit and cannot hold weights");
        Element = element; GroupSize = groupSize; PerChannel = perChannel; FloatScale = floatScale;
    }

    private int ScaleBytes => FloatScale ? 4 : 2;
    private string ScaleSuffix => FloatScale ? ":f32" : "";
    private float ReadScale(ReadOnlySpan<byte> block) => FloatScale ? System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(block) : ReadHalf(block, 0);

    public override string Name => Element.Name + (PerChannel ? "" : $":g{GroupSize}") + ScaleSuffix;
    public override string StorageName => $"{Element.Name}:g{GroupSize}" + ScaleSuffix;
    public override TensorType? GgmlType => null;
    public override int BlockSize => GroupSize;
    public override int BytesPerBlock => ScaleBytes + BitPacking.PackedBytes(GroupSize, Element.Bits);
    public override TensorFormat Bind(long rowLength) => PerChannel ? new MinifloatFormat(Element, (int)rowLength, true, FloatScale) : this;

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        for (int g = 0; g < row.Length / GroupSize; g++)
        {
            var x = row.Slice(g * GroupSize, GroupSize);
            var block = dst.Slice(g * BytesPerBlock, BytesPerBlock);
            float amax = 0;
            foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
            float s = amax / Element.MaxFinite;
            if (FloatScale) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(block, s);
            else WriteHalf(block, 0, s = RoundTripHalf(s));
            float inv = s != 0 ? 1f / s : 0f;
            for (int i = 0; i < x.Length; i++) codes[i] = (int)Element.Encode(x[i] * inv, saturate: true);
            BitPacking.Pack(codes, Element.Bits, block[ScaleBytes..]);
        }
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        for (int g = 0; g < dst.Length / GroupSize; g++)
        {
            var block = src.Slice(g * BytesPerBlock, BytesPerBlock);
            float s = ReadScale(block);
            BitPacking.Unpack(block[ScaleBytes..], Element.Bits, codes);
            for (int i = 0; i < GroupSize; i++) dst[g * GroupSize + i] = Element.Decode((uint)codes[i]) * s;
        }
    }

    private Kernels.Quantized.PackedKind? _kind;

    /// <summary>Grouped E2M1, E2M3 and E3M2 codes run as their book's integer levels; other elements and per-row
    /// scales run on the float path.</summary>
    internal override Kernels.Quantized.PackedKind? Kind =>
        PerChannel || Element.Bits > 6 || !Kernels.Quantized.KernelGroups.Sizes.Contains(GroupSize) ? null
        : _kind ??= Kernels.Quantized.LevelBook.ForElement(Element) is { } book ? Kernels.Quantized.BookBindings.Kind(this, book, e8m0: false) : null;

    /// <summary>The fp16 scale, then the packed codes. D is the scale over the book's integer scale.</summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> b, ref Kernels.Quantized.DecodedBlock o)
    {
        Span<int> codes = stackalloc int[GroupSize];
        o.D = ReadScale(b) / Kind!.Book!.Scale;
        BitPacking.Unpack(b[ScaleBytes..], Element.Bits, codes);
        for (int i = 0; i < GroupSize; i++) o.Codes[i] = (byte)codes[i];
    }

    /// <summary>e{E}m{M}[fn|fnuz][:g{N}][:channel] (and the fp8/float spellings <see cref="Minifloat.Parse"/> reads).</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 2;
        public override string Forms => "e{E}m{M}[fn|fnuz][:g{N}][:f32] for any minifloat with E 1..8, M 0..10 (default one scale per row; f32: float32 scales)";
        public override IReadOnlyList<string> Examples => ["e2m3:g128", "e3m2:g32", "e2m1fn:g16", "e3m2fn:g32", "e4m3", "e4m3fn:g32:f32"];

        public override TensorFormat? TryParse(string head, FormatOptions options)
        {
            if (!(head.StartsWith('e') || head.StartsWith("fp8", StringComparison.Ordinal) || head.StartsWith("float", StringComparison.Ordinal))) return null;
            var element = Minifloat.Parse(head);
            int? group = options.TakeGroup();
            bool channel = options.Take("channel");
            bool floatScale = options.Take("f32");
            return new MinifloatFormat(element, group ?? 1, perChannel: group is null || channel, floatScale);
        }
    }
}
