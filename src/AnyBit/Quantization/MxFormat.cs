using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// OCP microscaling storage: per block of k (32 by default) an E8M0 shared scale byte, then the element codes
/// bit-packed at the element width (8, 6 or 4 bits). Values are exactly what <see cref="Microscaling"/> (the
/// microxcaling-exact fake quantizer) produces; a block whose scale would overflow E8M0 stores 0xFF (NaN).
/// </summary>
public sealed class MxFormat : TensorFormat
{
    private readonly Minifloat? _code; // element encoding (null for the int8 element)

    public MxFormat(MxElement element, int blockSize, MxRounding rounding)
    {
        Element = element; MxBlock = blockSize; Rounding = rounding;
        _code = element.ExponentBits switch
        {
            0 => null,
            4 when element.MantissaBits == 5 => Minifloat.Parse("e4m3fn"),
            5 => Minifloat.Parse("e5m2"),
            3 => Minifloat.Parse("e3m2fn"),
            2 when element.MantissaBits == 5 => Minifloat.Parse("e2m3fn"),
            _ => Minifloat.Parse("e2m1fn"),
        };
    }

    public MxElement Element { get; }
    public int MxBlock { get; }
    public MxRounding Rounding { get; }

    public override string Name => Element.Name + (MxBlock != 32 ? $":g{MxBlock}" : "") + (Rounding == MxRounding.NearestAway ? ":away" : "");
    public override TensorType? GgmlType => null;
    public override int BlockSize => MxBlock;
    public override int BytesPerBlock => 1 + BitPacking.PackedBytes(MxBlock, Element.StoredBits);

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        Span<float> q = stackalloc float[MxBlock];
        Span<int> codes = stackalloc int[MxBlock];
        for (int b = 0; b < row.Length / MxBlock; b++)
        {
            var x = row.Slice(b * MxBlock, MxBlock);
            var block = dst.Slice(b * BytesPerBlock, BytesPerBlock);
            int? shared = Microscaling.SharedExponent(x, Element);
            if (shared is null)
            {
                block.Clear();
                block[0] = 0xFF;
                continue;
            }
            block[0] = (byte)(shared.Value + 127);
            Microscaling.QuantizeDequantize(x, q, Element, Rounding, MxBlock);
            float scale = MathF.Pow(2, shared.Value);
            for (int i = 0; i < MxBlock; i++)
            {
                float element = q[i] / scale;
                codes[i] = _code is null ? (int)MathF.Round(element * 64f) & 0xFF : (int)_code.Encode(element, saturate: true);
            }
            BitPacking.Pack(codes, Element.StoredBits, block[1..]);
        }
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> codes = stackalloc int[MxBlock];
        for (int b = 0; b < dst.Length / MxBlock; b++)
        {
            var block = src.Slice(b * BytesPerBlock, BytesPerBlock);
            float scale = block[0] == 0xFF ? float.NaN : MathF.Pow(2, block[0] - 127);
            BitPacking.Unpack(block[1..], Element.StoredBits, codes);
            for (int i = 0; i < MxBlock; i++)
            {
                float element = _code is null ? (sbyte)(byte)codes[i] / 64f : _code.Decode((uint)codes[i]);
                dst[b * MxBlock + i] = element * scale;
            }
        }
    }

    private Kernels.Quantized.PackedKind? _kind;

    /// <summary>
    /// Blocks the kernels are compiled for run with their E8M0 byte kept: int8 elements as Q8_0's arithmetic over 64,
    /// 4- and 6-bit float elements as their book's integer levels; 8-bit float elements run on the float path.
    /// </summary>
    internal override Kernels.Quantized.PackedKind? Kind => !Kernels.Quantized.KernelGroups.Sizes.Contains(MxBlock) ? null : _kind ??= MakeKind();

    private Kernels.Quantized.PackedKind? MakeKind()
    {
        if (Element.ExponentBits == 0)
            return new(default, MxBlock, 8, -128, Kernels.Quantized.SubScaleLayout.None, false)
            {
                Format = this, Binding = Kernels.Quantized.KernelGroups.For<Kernels.Quantized.MxInt8Family>(MxBlock), E8M0Shift = 6,
            };
        if (Element.StoredBits > 6) return null;
        var book = Kernels.Quantized.LevelBook.ForElement(Minifloat.Parse($"e{Element.ExponentBits}m{Element.MantissaBits - 2}fn"));
        return book is null ? null : Kernels.Quantized.BookBindings.Kind(this, book, e8m0: true);
    }

    /// <summary>The E8M0 scale byte (0xFF is NaN), then the packed element codes; int8 elements are two's complement,
    /// and flipping the sign bit makes them code + 128. D is the scale over the book's integer scale (64 for int8).</summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> b, ref Kernels.Quantized.DecodedBlock o)
    {
        var kind = Kind!;
        float scale = kind.Book?.Scale ?? 64f;
        Span<int> codes = stackalloc int[MxBlock];
        o.Exponent = b[0];
        o.D = b[0] == 0xFF ? float.NaN : MathF.ScaleB(1f, b[0] - 127) / scale;
        BitPacking.Unpack(b[1..], Element.StoredBits, codes);
        for (int i = 0; i < MxBlock; i++) o.Codes[i] = (byte)(kind.Book is null ? codes[i] ^ 0x80 : codes[i]);
    }

    /// <summary>mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8 [:g{N}] [:even|:away].</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 3;
        public override string Forms => "mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8 [:g{N}] [:even|:away]";
        public override IReadOnlyList<string> Examples => ["mxfp6_e2m3", "mxfp6_e3m2:g64", "mxfp4_e2m1", "mxint8", "mxint8:away", "mxfp8_e4m3", "mxfp8_e5m2"];

        public override TensorFormat? TryParse(string head, FormatOptions options)
        {
            var element = MxElement.All.FirstOrDefault(e => e.Name == head);
            if (element is null) return null;
            int block = options.TakeGroup() ?? 32;
            var rounding = options.Take("away") ? MxRounding.NearestAway : MxRounding.NearestEven;
            options.Take("even");
            return new MxFormat(element, block, rounding);
        }
    }
}
