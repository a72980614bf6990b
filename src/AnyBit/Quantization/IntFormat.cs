using AnyBit.Formats;
using AnyBit.IO;
using static AnyBit.Formats.GgmlHelpers;

namespace AnyBit.Quantization;

/// <summary>How an integer format's scale is shared.</summary>
public enum ScaleScope { Group, Channel, Tensor }

/// <summary>
/// k-bit integers (k = 1..8) with one scale per group of N weights, per output channel (row) or per tensor.
/// Block layout: fp16 scale s, then (asymmetric only) a u8 zero point z, then the N codes bit-packed
/// (<see cref="BitPacking"/>). Symmetric: code = q + 2^(k−1), q = clamp(round(x/s), −2^(k−1), 2^(k−1)−1) with
/// s = absmax/(2^(k−1)−1), value q·s (k = 1 stores signs with s = mean|x|). Asymmetric: s = (max−min)/(2^k−1),
/// z = clamp(round(−min/s), 0, 2^k−1), code = clamp(round(x/s)+z, 0, 2^k−1), value (code−z)·s. Rounding is half to
/// even; codes are computed against the fp16-rounded scale that is stored, so decoding sees what encoding assumed.
/// Per-channel and per-tensor scopes store a group of one whole row (per-tensor rows all carry the tensor's scale).
/// With <see cref="FloatScale"/> (<c>:f32</c>) the scale is stored as float32 instead: checkpoints whose scales are
/// bf16 or float32 (GPTQ, compressed-tensors, LLM.int8) run on the same kernels with every value they hold.
/// </summary>
public sealed class IntFormat : TensorFormat
{
    public int Bits { get; }
    public int GroupSize { get; }
    public bool Symmetric { get; }
    public ScaleScope Scope { get; }
    /// <summary>The scale is stored as float32, not fp16.</summary>
    public bool FloatScale { get; }

    public IntFormat(int bits, int groupSize, bool symmetric, ScaleScope scope = ScaleScope.Group, bool floatScale = false)
    {
        if (bits is < 1 or > 8) throw new AnyBitException($"int{bits}: bits must be 1..8");
        if (groupSize < 1) throw new AnyBitException($"int{bits}: group size {groupSize} must be positive");
        Bits = bits; GroupSize = groupSize; Symmetric = symmetric; Scope = scope; FloatScale = floatScale;
    }

    /// <summary>Bytes of the stored scale, then the zero point (asymmetric) and the codes.</summary>
    private int ScaleBytes => FloatScale ? 4 : 2;
    private int CodesStart => ScaleBytes + (Symmetric ? 0 : 1);
    private string ScaleSuffix => FloatScale ? ":f32" : "";
    private float ReadScale(ReadOnlySpan<byte> block) => FloatScale ? System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(block) : ReadHalf(block, 0);

    public override string Name => $"int{Bits}:" + Scope switch
    {
        ScaleScope.Group => $"g{GroupSize}",
        ScaleScope.Channel => "channel",
        _ => "tensor",
    } + (Symmetric ? ":sym" : ":asym") + ScaleSuffix;

    /// <summary>The stored layout's name (scope resolved to a group size), used as the GGUF type declaration.</summary>
    public override string StorageName => $"int{Bits}:g{GroupSize}" + (Symmetric ? ":sym" : ":asym") + ScaleSuffix;

    public override TensorType? GgmlType => null;
    public override int BlockSize => GroupSize;
    public override int BytesPerBlock => CodesStart + BitPacking.PackedBytes(GroupSize, Bits);

    public override TensorFormat Bind(long rowLength) =>
        Scope == ScaleScope.Group ? this : new IntFormat(Bits, (int)rowLength, Symmetric, Scope, FloatScale);

    public override void Quantize(ReadOnlySpan<float> tensor, int rowLength, Span<byte> dst)
    {
        if (Scope != ScaleScope.Tensor)
        {
            base.Quantize(tensor, rowLength, dst);
            return;
        }
        // One scale for the whole tensor: every row's block stores it.
        float min = float.MaxValue, max = float.MinValue, amax = 0;
        double sumAbs = 0;
        foreach (float v in tensor) { min = MathF.Min(min, v); max = MathF.Max(max, v); amax = MathF.Max(amax, MathF.Abs(v)); sumAbs += MathF.Abs(v); }
        var stats = new GroupStats(min, max, amax, (float)(sumAbs / Math.Max(1, tensor.Length)));
        int rowBytes = BytesPerBlock;
        for (int r = 0; r < tensor.Length / rowLength; r++)
            QuantizeGroup(tensor.Slice(r * rowLength, rowLength), dst.Slice(r * rowBytes, rowBytes), stats);
    }

    private readonly record struct GroupStats(float Min, float Max, float AbsMax, float MeanAbs)
    {
        public static GroupStats Of(ReadOnlySpan<float> x)
        {
            float min = float.MaxValue, max = float.MinValue, amax = 0, sum = 0;
            foreach (float v in x) { min = MathF.Min(min, v); max = MathF.Max(max, v); amax = MathF.Max(amax, MathF.Abs(v)); sum += MathF.Abs(v); }
            return new GroupStats(min, max, amax, sum / x.Length);
        }
    }

    public override void QuantizeRow(ReadOnlySpan<float> row, Span<byte> dst)
    {
        for (int g = 0; g < row.Length / GroupSize; g++)
        {
            var x = row.Slice(g * GroupSize, GroupSize);
            QuantizeGroup(x, dst.Slice(g * BytesPerBlock, BytesPerBlock), GroupStats.Of(x));
        }
    }

    private void QuantizeGroup(ReadOnlySpan<float> x, Span<byte> block, GroupStats stats)
    {
        Span<int> codes = x.Length <= 4096 ? stackalloc int[x.Length] : new int[x.Length];
        var (s, z) = Fit(stats);
        for (int i = 0; i < x.Length; i++) codes[i] = Code(x[i], s, z);
        WriteBlock(s, z, codes, block);
    }

    /// <summary>The (scale, zero point) this format stores for a group, as <see cref="QuantizeRow"/> computes them.</summary>
    internal (float Scale, int Zero) FitGroup(ReadOnlySpan<float> x) => Fit(GroupStats.Of(x));

    private (float Scale, int Zero) Fit(GroupStats stats)
    {
        int levels = 1 << Bits;
        float Stored(float scale) => FloatScale ? scale : RoundTripHalf(scale);
        if (Symmetric)
            return Bits == 1 ? (Stored(stats.MeanAbs), 0) : (Stored(stats.AbsMax / ((levels >> 1) - 1)), levels >> 1);
        int qmax = levels - 1;
        float s = stats.Max > stats.Min ? (stats.Max - stats.Min) / qmax : MathF.Abs(stats.Max) / qmax;
        s = Stored(s);
        int z = s != 0 ? Math.Clamp(NearestInt(-stats.Min * (1f / s)), 0, qmax) : 0;
        return (s, z);
    }

    /// <summary>The code of <paramref name="x"/> under a group's parameters: the rounding of every path (RTN, GPTQ, clip search).</summary>
    internal int Code(float x, float scale, int zero)
    {
        int levels = 1 << Bits;
        float inv = scale != 0 ? 1f / scale : 0f;
        if (Symmetric && Bits == 1) return x >= 0 ? 1 : 0;
        if (Symmetric) return Math.Clamp(NearestInt(x * inv), -zero, (levels >> 1) - 1) + zero;
        return Math.Clamp(NearestInt(x * inv) + zero, 0, levels - 1);
    }

    /// <summary>The value a code decodes to.</summary>
    internal float Value(int code, float scale, int zero) =>
        Symmetric && Bits == 1 ? (code == 1 ? scale : -scale) : (code - zero) * scale;

    /// <summary>Writes one block from its parameters and codes.</summary>
    internal void WriteBlock(float scale, int zero, ReadOnlySpan<int> codes, Span<byte> block)
    {
        if (FloatScale) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(block, scale);
        else WriteHalf(block, 0, scale);
        if (!Symmetric) block[ScaleBytes] = (byte)zero;
        BitPacking.Pack(codes, Bits, block[CodesStart..]);
    }

    public override void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        Span<int> codes = GroupSize <= 4096 ? stackalloc int[GroupSize] : new int[GroupSize];
        int levels = 1 << Bits;
        for (int g = 0; g < dst.Length / GroupSize; g++)
        {
            var block = src.Slice(g * BytesPerBlock, BytesPerBlock);
            var y = dst.Slice(g * GroupSize, GroupSize);
            float s = ReadScale(block);
            int zero = Symmetric ? (Bits == 1 ? 0 : levels >> 1) : block[ScaleBytes];
            BitPacking.Unpack(block[CodesStart..], Bits, codes);
            if (Symmetric && Bits == 1)
                for (int i = 0; i < GroupSize; i++) y[i] = codes[i] == 1 ? s : -s;
            else
                for (int i = 0; i < GroupSize; i++) y[i] = (codes[i] - zero) * s;
        }
    }

    private Kernels.Quantized.PackedKind? _kind;

    /// <summary>
    /// Grouped scopes of a compiled group size run on the integer kernels, codes stored in 2, 3, 4, 5, 6 or 8 bits
    /// (1-bit codes take 2, 7-bit take 8), one super-block per group, weight = s·(code − z). Per-channel and
    /// per-tensor scopes run on the float path.
    /// </summary>
    internal override Kernels.Quantized.PackedKind? Kind =>
        Scope != ScaleScope.Group || !Kernels.Quantized.KernelGroups.Sizes.Contains(GroupSize) ? null : _kind ??= MakeKind();

    private Kernels.Quantized.PackedKind MakeKind()
    {
        int storage = Bits switch { <= 2 => 2, 3 => 3, 4 => 4, 5 => 5, 6 => 6, _ => 8 };
        var binding = storage switch
        {
            2 => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C2>>(GroupSize),
            3 => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C3>>(GroupSize),
            4 => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C4>>(GroupSize),
            5 => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C5>>(GroupSize),
            6 => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C6>>(GroupSize),
            _ => Kernels.Quantized.KernelGroups.For<Kernels.Quantized.IntFamily<Kernels.Quantized.C8>>(GroupSize),
        };
        return new(default, GroupSize, storage, 0, Kernels.Quantized.SubScaleLayout.ZeroPoint, false) { Format = this, Binding = binding };
    }

    /// <summary>
    /// A group (fp16 or f32 scale, u8 zero point if asymmetric, packed codes): value = s·(code − z), with z = 2^(k−1) when
    /// symmetric. Symmetric 1-bit stores signs (±s): code' = 2·code, z = 1.
    /// </summary>
    internal override void DecodeBlock(ReadOnlySpan<byte> b, ref Kernels.Quantized.DecodedBlock o)
    {
        o.D = ReadScale(b);
        Span<int> codes = stackalloc int[GroupSize];
        BitPacking.Unpack(b[CodesStart..], Bits, codes);
        bool signs = Symmetric && Bits == 1;
        o.Zero = signs ? 1 : Symmetric ? 1 << (Bits - 1) : b[ScaleBytes];
        for (int i = 0; i < codes.Length; i++) o.Codes[i] = (byte)(signs ? 2 * codes[i] : codes[i]);
    }

    /// <summary>int{1..8}[:g{N}|:channel|:tensor][:sym|:asym]; with :min the float-minimum form (<see cref="IntMinFormat"/>).</summary>
    private sealed class Family : FormatFamily
    {
        public override int Order => 0;
        public override string Forms => "int{1..8}[:g{N}|:channel|:tensor][:sym|:asym][:f32] (default g128, asym; f32: float32 scales); int{2..8}[:g{N}|:channel]:min (fp16 scale and minimum, q4_1's form)";
        public override IReadOnlyList<string> Examples =>
        [
            "int4:g32:asym", "int3:g64:sym", "int2:g128:asym", "int8:g256:sym", "int1:g64:sym", "int5:g32:asym", "int2:g64:sym",
            "int6:g128:asym", "int5:g128:sym", "int2:channel", "int8:tensor:sym", "int7:g64", "int4:g32:asym:f32", "int8:g128:sym:f32",
            "int2:g32:min", "int4:channel:min",
        ];

        public override TensorFormat? TryParse(string head, FormatOptions options)
        {
            if (!head.StartsWith("int", StringComparison.Ordinal) || head.Length == 3 || !head[3..].All(char.IsAsciiDigit)) return null;
            int bits = head.Length > 5 ? int.MaxValue : int.Parse(head[3..], System.Globalization.CultureInfo.InvariantCulture);
            if (bits is < 1 or > 8) throw new AnyBitException($"{head} has {head[3..]} bits; 1..8 are supported");
            int? group = options.TakeGroup();
            bool channel = options.Take("channel"), tensor = options.Take("tensor");
            if (options.Take("min"))
            {
                // A float minimum replaces the zero point: no sym/asym choice, no per-tensor scope, fp16 parameters.
                if (tensor || options.Take("sym") || options.Take("asym") || options.Take("f32")) throw new AnyBitException(":min takes only :g{N} or :channel");
                if (group is not null && channel) throw new AnyBitException("give one of :g{N}, :channel");
                return new IntMinFormat(bits, group ?? 128, channel);
            }
            bool sym = options.Take("sym");
            bool asym = options.Take("asym");
            bool floatScale = options.Take("f32");
            if (sym && asym) throw new AnyBitException("both :sym and :asym given");
            if ((group is not null ? 1 : 0) + (channel ? 1 : 0) + (tensor ? 1 : 0) > 1) throw new AnyBitException("give one of :g{N}, :channel, :tensor");
            var scope = channel ? ScaleScope.Channel : tensor ? ScaleScope.Tensor : ScaleScope.Group;
            return new IntFormat(bits, group ?? 128, symmetric: sym, scope, floatScale);
        }
    }
}
