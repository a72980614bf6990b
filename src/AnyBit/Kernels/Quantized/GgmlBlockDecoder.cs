using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Kernels.Quantized;

/// <summary>
/// Reads one ggml super-block into <see cref="DecodedBlock"/>: integer codes in value order and the block's
/// scales. The bit layouts are those of the dequantizers in <see cref="GgmlKQuants"/>, <see cref="GgmlLegacyQuants"/>
/// and <see cref="GgmlTernaryQuants"/>; tests check that d·sc·(code+offset) − dmin·m equals their output.
/// </summary>
internal static unsafe class GgmlBlockDecoder
{
    /// <summary>
    /// Block <paramref name="block"/> of each of the rows <paramref name="first"/>.. of a matrix of ggml bytes
    /// (<paramref name="blocksPerRow"/> blocks a row), as the lookup layouts repack a tile: row r's codes into
    /// codes[r·SuperBlock..], its scale into d[r] and zero point into zero[r]; rows from <paramref name="rows"/> on
    /// are left as the caller filled them (padding).
    /// </summary>
    public static void DecodeRows(PackedKind kind, byte* source, int rows, int blocksPerRow, int block, int first, Span<byte> codes, Span<float> d, Span<int> zero)
    {
        int sb = kind.SuperBlock, blockBytes = kind.BlockBytes;
        Span<int> scales = stackalloc int[sb / 16], mins = stackalloc int[sb / 16];
        for (int r = 0; r < d.Length && first + r < rows; r++)
        {
            var o = new DecodedBlock { Codes = codes.Slice(r * sb, sb), Scales16 = scales, Mins16 = mins };
            Decode(kind, new ReadOnlySpan<byte>(source + ((long)(first + r) * blocksPerRow + block) * blockBytes, blockBytes), ref o);
            d[r] = o.D;
            if (!zero.IsEmpty) zero[r] = o.Zero;
        }
    }

    public static void Decode(PackedKind kind, ReadOnlySpan<byte> b, ref DecodedBlock o)
    {
        o.Scales16.Fill(1);
        o.Mins16.Clear();
        o.DMin = 0;
        o.Zero = 0;
        var c = o.Codes;
        if (kind.Int is { } f)
        {
            DecodeInt(f, b, ref o);
            return;
        }
        if (kind.TableFormat is { } table)
        {
            DecodeTable(kind, table, b, ref o);
            return;
        }
        switch (kind.Type)
        {
            case TensorType.Q8_0:
                o.D = GgmlHelpers.ReadHalf(b, 0);
                for (int i = 0; i < 32; i++) c[i] = (byte)((sbyte)b[2 + i] + 128);
                break;
            case TensorType.Q4_0:
            case TensorType.IQ4_NL:
                // Codes are the nibbles; IQ4_NL's stand for the table entries (kind.Lut).
                o.D = GgmlHelpers.ReadHalf(b, 0);
                for (int i = 0; i < 16; i++) { c[i] = (byte)(b[2 + i] & 15); c[i + 16] = (byte)(b[2 + i] >> 4); }
                break;
            case TensorType.Q4_1:
            case TensorType.Q5_0:
            case TensorType.Q5_1:
            {
                // w = d·q + m: the min enters as dmin = −m against a min of 1 per value.
                bool hasMin = kind.Type != TensorType.Q5_0;
                o.D = GgmlHelpers.ReadHalf(b, 0);
                if (hasMin) { o.DMin = -GgmlHelpers.ReadHalf(b, 2); o.Mins16.Fill(1); }
                int at = hasMin ? 4 : 2;
                for (int i = 0; i < 32; i++)
                    c[i] = (byte)(kind.Type == TensorType.Q4_1
                        ? GgmlLegacyQuants.Nibble(b.Slice(4, 16), i)
                        : GgmlLegacyQuants.FiveBitCode(b.Slice(at, 4), b.Slice(at + 4, 16), i));
                break;
            }
            case TensorType.MXFP4:
                o.D = GgmlHelpers.E8M0Half(b[0]);
                for (int i = 0; i < 16; i++) { c[i] = (byte)(b[1 + i] & 15); c[i + 16] = (byte)(b[1 + i] >> 4); }
                break;
            case TensorType.Q4_K:
            case TensorType.Q5_K:
            {
                bool five = kind.Type == TensorType.Q5_K;
                o.D = GgmlHelpers.ReadHalf(b, 0); o.DMin = GgmlHelpers.ReadHalf(b, 2);
                var sc = b.Slice(4, 12);
                var qh = b.Slice(16, 32);
                var ql = b.Slice(five ? 48 : 16, 128);
                for (int j = 0; j < 4; j++)
                {
                    for (int l = 0; l < 32; l++)
                    {
                        int lo = ql[32 * j + l] & 15, hi = ql[32 * j + l] >> 4;
                        if (five)
                        {
                            lo += ((qh[l] >> (2 * j)) & 1) != 0 ? 16 : 0;
                            hi += ((qh[l] >> (2 * j + 1)) & 1) != 0 ? 16 : 0;
                        }
                        c[64 * j + l] = (byte)lo; c[64 * j + 32 + l] = (byte)hi;
                    }
                }
                for (int s = 0; s < 8; s++)
                {
                    var (scale, min) = GgmlKQuants.ScaleMinK4(s, sc);
                    o.Scales16[2 * s] = o.Scales16[2 * s + 1] = scale;
                    o.Mins16[2 * s] = o.Mins16[2 * s + 1] = min;
                }
                break;
            }
            case TensorType.Q6_K:
                o.D = GgmlHelpers.ReadHalf(b, 208);
                for (int n = 0; n < 256; n += 128)
                {
                    var ql = b.Slice(n / 2, 64);
                    var qh = b.Slice(128 + n / 4, 32);
                    for (int l = 0; l < 32; l++)
                    {
                        c[n + l] = (byte)((ql[l] & 15) | ((qh[l] & 3) << 4));
                        c[n + l + 32] = (byte)((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
                        c[n + l + 64] = (byte)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                        c[n + l + 96] = (byte)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                    }
                }
                for (int h = 0; h < 16; h++) o.Scales16[h] = (sbyte)b[192 + h];
                break;
            case TensorType.Q3_K:
            {
                o.D = GgmlHelpers.ReadHalf(b, 108);
                var hm = b[..32];
                GgmlKQuants.Q3Scales(b.Slice(96, 12), o.Scales16);
                int e = 0, m = 1;
                for (int n = 0; n < 256; n += 128)
                {
                    var q = b.Slice(32 + n / 4, 32);
                    for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                        for (int l = 0; l < 32; l++) c[e++] = (byte)(((q[l] >> shift) & 3) + ((hm[l] & m) != 0 ? 4 : 0));
                }
                break;
            }
            case TensorType.Q2_K:
            {
                o.D = GgmlHelpers.ReadHalf(b, 80); o.DMin = GgmlHelpers.ReadHalf(b, 82);
                int e = 0;
                for (int n = 0; n < 256; n += 128)
                {
                    var q = b.Slice(16 + n / 4, 32);
                    for (int shift = 0; shift < 8; shift += 2)
                        for (int l = 0; l < 32; l++) c[e++] = (byte)((q[l] >> shift) & 3);
                }
                for (int h = 0; h < 16; h++) { o.Scales16[h] = b[h] & 15; o.Mins16[h] = b[h] >> 4; }
                break;
            }
            case TensorType.TQ2_0:
                o.D = GgmlHelpers.ReadHalf(b, 64);
                for (int half = 0; half < 2; half++)
                    for (int n = 0; n < 4; n++)
                        for (int m = 0; m < 32; m++) c[half * 128 + n * 32 + m] = (byte)((b[half * 32 + m] >> (2 * n)) & 3);
                break;
            case TensorType.TQ1_0:
                o.D = GgmlHelpers.ReadHalf(b, 52);
                for (int n = 0; n < 5; n++)
                    for (int m = 0; m < 32; m++) c[n * 32 + m] = (byte)GgmlTernaryQuants.Trit(b[m], n);
                for (int n = 0; n < 5; n++)
                    for (int m = 0; m < 16; m++) c[160 + n * 16 + m] = (byte)GgmlTernaryQuants.Trit(b[32 + m], n);
                for (int n = 0; n < 4; n++)
                    for (int m = 0; m < 4; m++) c[240 + n * 4 + m] = (byte)GgmlTernaryQuants.Trit(b[48 + m], n);
                break;
            default:
                throw new NotSupportedException($"no integer kernel for {kind.Type}");
        }
    }

    /// <summary>
    /// An <see cref="Quantization.IntFormat"/> group (fp16 scale, u8 zero point if asymmetric, packed codes): value =
    /// s·(code − z), with z = 2^(k−1) when symmetric. Symmetric 1-bit stores signs (±s): code' = 2·code, z = 1.
    /// </summary>
    private static void DecodeInt(Quantization.IntFormat f, ReadOnlySpan<byte> b, ref DecodedBlock o)
    {
        o.D = GgmlHelpers.ReadHalf(b, 0);
        Span<int> codes = stackalloc int[f.GroupSize];
        Formats.BitPacking.Unpack(b[(f.Symmetric ? 2 : 3)..], f.Bits, codes);
        bool signs = f.Symmetric && f.Bits == 1;
        o.Zero = signs ? 1 : f.Symmetric ? 1 << (f.Bits - 1) : b[2];
        for (int i = 0; i < codes.Length; i++) o.Codes[i] = (byte)(signs ? 2 * codes[i] : codes[i]);
    }

    /// <summary>
    /// A table-format block: bitsandbytes NF4/FP4 (float32 absmax, two indices per byte, the first in the high
    /// nibble), MX (E8M0 scale byte, packed element codes; 0xFF is NaN) or a grouped minifloat (fp16 scale, packed
    /// codes). D is the block's scale over the book's integer scale, so D·level reproduces the format's values.
    /// </summary>
    private static void DecodeTable(PackedKind kind, Quantization.TensorFormat format, ReadOnlySpan<byte> b, ref DecodedBlock o)
    {
        var c = o.Codes;
        int n = kind.SuperBlock;
        float scale = kind.Book?.Scale ?? 64f; // the MX int8 element stands for code/64
        Span<int> codes = stackalloc int[n];
        switch (format)
        {
            case Quantization.LookupTableFormat:
                o.D = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(b) / scale;
                for (int i = 0; i < n; i += 2) { c[i] = (byte)(b[4 + i / 2] >> 4); c[i + 1] = (byte)(b[4 + i / 2] & 15); }
                return;
            case Quantization.MxFormat mx:
                o.Exponent = b[0];
                o.D = b[0] == 0xFF ? float.NaN : MathF.ScaleB(1f, b[0] - 127) / scale;
                BitPacking.Unpack(b[1..], mx.Element.StoredBits, codes);
                // int8 elements are two's complement: flipping the sign bit makes them code + 128.
                for (int i = 0; i < n; i++) c[i] = (byte)(kind.Book is null ? codes[i] ^ 0x80 : codes[i]);
                return;
            case Quantization.MinifloatFormat mf:
                o.D = GgmlHelpers.ReadHalf(b, 0) / scale;
                BitPacking.Unpack(b[2..], mf.Element.Bits, codes);
                for (int i = 0; i < n; i++) c[i] = (byte)codes[i];
                return;
            default:
                throw new NotSupportedException($"no integer kernel for {format.Name}");
        }
    }
}
