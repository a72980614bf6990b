using System.Buffers.Binary;
using System.Text;

namespace AnyBit.IO;

/// <summary>
/// A memory-mapped GGUF file (versions 1, 2 and 3). Layout: magic "GGUF", u32 version, tensor count, metadata count
/// (u64 in v2+, u32 in v1), the metadata key/values, the tensor infos (name, dims innermost first, ggml type,
/// offset), padding to <c>general.alignment</c> (default 32), then the tensor data. Every count, length and offset
/// is checked against the bytes actually present before anything is allocated, so a hostile header cannot make the
/// reader run out of memory or read outside the file.
/// </summary>
public sealed class GgufFile : ITensorStore
{
    private const uint Magic = 0x46554747; // "GGUF" little-endian
    private const int MaxDims = 4;

    private readonly MappedFile _file;
    private readonly List<StoredTensor> _tensors = new();
    private readonly Dictionary<string, StoredTensor> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object> _metadata = new(StringComparer.Ordinal);
    private readonly List<string> _metadataOrder = new();

    public string Path => _file.Path;
    public uint Version { get; private set; }
    public long Alignment { get; private set; } = 32;
    /// <summary>Absolute offset of the tensor data section.</summary>
    public long DataOffset { get; private set; }

    public IReadOnlyList<StoredTensor> Tensors => _tensors;
    public StoredTensor? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys => _metadataOrder;

    /// <summary>All metadata values (scalars as .NET primitives, strings, <see cref="GgufArray"/>).</summary>
    public IReadOnlyDictionary<string, object> Metadata => _metadata;

    private GgufFile(MappedFile file) => _file = file;

    public static GgufFile Open(string path)
    {
        var file = new MappedFile(path);
        var gguf = new GgufFile(file);
        try
        {
            gguf.Parse();
            return gguf;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>True when the file starts with the GGUF magic.</summary>
    public static bool HasMagic(string path)
    {
        using var fs = File.OpenRead(path);
        Span<byte> b = stackalloc byte[4];
        return fs.Read(b) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(b) == Magic;
    }

    // ---- typed metadata access ----

    /// <summary>The metadata with typed access and the tensors' shapes, as the config and tokenizer readers take it.</summary>
    public GgufMetadata TypedMetadata => _typed ??= new GgufMetadata(_metadata, name => Find(name)?.Shape, Path);
    private GgufMetadata? _typed;

    public bool TryGet(string key, out object value) => TypedMetadata.TryGet(key, out value);
    public string? GetString(string key) => TypedMetadata.GetString(key);
    /// <summary>An integer value of any integer type (or null when absent or not an integer).</summary>
    public long? GetInteger(string key) => TypedMetadata.GetInteger(key);
    public double? GetFloat(string key) => TypedMetadata.GetFloat(key);
    public bool? GetBool(string key) => TypedMetadata.GetBool(key);
    public GgufArray? GetArray(string key) => TypedMetadata.GetArray(key);

    // ---- parsing ----

    private void Parse()
    {
        var r = new Reader(_file);
        if (_file.Length < 8) throw r.Bad($"too short for a GGUF file ({_file.Length} bytes)");
        uint magic = r.U32();
        if (magic != Magic) throw r.Bad("not a GGUF file (bad magic)");
        Version = r.U32();
        if (Version is 0 or > 3)
        {
            if (BinaryPrimitives.ReverseEndianness(Version) is >= 1 and <= 3)
                throw r.Bad("big-endian GGUF files are not supported");
            throw r.Bad($"unsupported GGUF version {Version} (1, 2 and 3 are read)");
        }
        r.Wide = Version >= 2;
        ulong tensorCount = r.Count();
        ulong kvCount = r.Count();
        // Each tensor info takes at least 8+4+8+4+8 bytes, each kv at least 8+4+1: counts beyond the file are lies.
        if (tensorCount > (ulong)(_file.Length / 24)) throw r.Bad($"header claims {tensorCount} tensors, more than the file could hold");
        if (kvCount > (ulong)(_file.Length / 13)) throw r.Bad($"header claims {kvCount} metadata entries, more than the file could hold");

        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.String();
            var type = (GgufValueType)r.U32();
            object value = ReadValue(r, type, key, depth: 0);
            if (_metadata.ContainsKey(key)) throw r.Bad($"metadata key '{key}' appears twice");
            _metadata[key] = value;
            _metadataOrder.Add(key);
        }

        if (_metadata.TryGetValue("general.alignment", out var alignObj))
        {
            long align = GetInteger("general.alignment") ?? -1;
            if (align <= 0 || align > 1 << 20 || (align & (align - 1)) != 0)
                throw r.Bad($"general.alignment {alignObj} is not a power of two");
            Alignment = align;
        }

        var infos = new List<(string Name, long[] Ne, uint TypeId, ulong Offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = r.String();
            uint nDims = r.U32();
            if (nDims == 0 || nDims > MaxDims) throw r.Bad($"tensor '{name}' has {nDims} dimensions (1 to {MaxDims} allowed)");
            var ne = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong dim = r.Wide ? r.U64() : r.U32();
                if (dim == 0 || dim > long.MaxValue / 2) throw r.Bad($"tensor '{name}' has invalid dimension {dim}");
                ne[d] = (long)dim;
            }
            uint typeId = r.U32();
            if (typeId >= Quantization.FormatRegistry.FirstCustomTypeId && CustomFormat(typeId, r) is null)
                throw r.Bad($"tensor '{name}' has type id {typeId}, which the file does not declare ({Quantization.FormatRegistry.TypeKeyPrefix}{typeId} is missing)");
            ulong offset = r.U64();
            infos.Add((name, ne, typeId, offset));
        }
        // A ggml id's meaning can depend on the architecture and on the other tensors (bitnet.cpp's ids): resolved once all are read.
        string? architecture = GetString("general.architecture");
        var names = infos.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var types = new TensorType[infos.Count];
        for (int i = 0; i < infos.Count; i++)
        {
            var (name, _, typeId, _) = infos[i];
            if (typeId >= Quantization.FormatRegistry.FirstCustomTypeId) types[i] = (TensorType)typeId;
            else types[i] = GgufTypeIds.Resolve(typeId, name, architecture, names.Contains, out string? problem) ?? throw r.Bad(problem!);
        }

        DataOffset = (r.Position + Alignment - 1) / Alignment * Alignment;
        long dataLength = _file.Length - DataOffset;
        if (dataLength < 0 && tensorCount > 0) throw r.Bad("file ends before the tensor data section: truncated?");

        var ranges = new List<(long Begin, long End, string Name)>();
        for (int i = 0; i < infos.Count; i++)
        {
            var (name, ne, _, offset) = infos[i];
            var type = types[i];
            long elements = TensorTypes.ElementCount(ne);
            var custom = (uint)type >= Quantization.FormatRegistry.FirstCustomTypeId ? CustomFormat((uint)type, r) : null;
            var traits = custom is not null
                ? new TensorTypeTraits(type, custom.Name, custom.BlockSize, custom.BytesPerBlock, custom.TensorTrailerBytes)
                : TensorTypes.Traits(type);
            if (elements < 0) throw r.Bad($"tensor '{name}' is too large");
            if (ne[0] % traits.BlockSize != 0)
                throw r.Bad($"tensor '{name}' row length {ne[0]} is not a multiple of the {traits.Name} block size {traits.BlockSize}");
            long bytes = TensorTypes.ByteSize(traits, elements);
            if (bytes < 0) throw r.Bad($"tensor '{name}' is too large");
            if (offset % (ulong)Alignment != 0) throw r.Bad($"tensor '{name}' offset {offset} is not aligned to {Alignment}");
            if (offset > (ulong)Math.Max(0, dataLength) || (long)offset + bytes > dataLength)
                throw r.Bad($"tensor '{name}' ({bytes} bytes at data offset {offset}) runs past the end of the file: truncated?");
            if (_byName.ContainsKey(name)) throw r.Bad($"tensor '{name}' appears twice");
            var shape = ne.Reverse().ToArray();
            var t = new StoredTensor(name, shape, type, _file, DataOffset + (long)offset, bytes, custom);
            _tensors.Add(t);
            _byName[name] = t;
            ranges.Add(((long)offset, (long)offset + bytes, name));
        }
        ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Begin < ranges[i - 1].End && ranges[i].End > ranges[i].Begin)
                throw r.Bad($"tensors '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap");
    }

    private readonly Dictionary<uint, Quantization.TensorFormat> _customFormats = new();

    /// <summary>The AnyBit format declared for a custom type id in this file's metadata, or null.</summary>
    private Quantization.TensorFormat? CustomFormat(uint typeId, Reader r)
    {
        if (_customFormats.TryGetValue(typeId, out var known)) return known;
        if (GetString(Quantization.FormatRegistry.TypeKeyPrefix + typeId) is not string spec) return null;
        Quantization.TensorFormat format;
        try
        {
            format = Quantization.FormatRegistry.Parse(spec);
        }
        catch (AnyBitException e)
        {
            throw r.Bad($"type id {typeId} is declared as '{spec}', which is not a valid format ({e.Message})");
        }
        if (format.GgmlType is not null) throw r.Bad($"type id {typeId} is declared as the ggml type '{spec}'; ggml types use their own ids");
        _customFormats[typeId] = format;
        return format;
    }

    private static object ReadValue(Reader r, GgufValueType type, string key, int depth)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return r.Byte();
            case GgufValueType.Int8: return (sbyte)r.Byte();
            case GgufValueType.UInt16: return (ushort)r.U16();
            case GgufValueType.Int16: return (short)r.U16();
            case GgufValueType.UInt32: return r.U32();
            case GgufValueType.Int32: return (int)r.U32();
            case GgufValueType.Float32: return BitConverter.Int32BitsToSingle((int)r.U32());
            case GgufValueType.Bool:
                byte b = r.Byte();
                if (b > 1) throw r.Bad($"metadata '{key}': bool value {b} is neither 0 nor 1");
                return b == 1;
            case GgufValueType.String: return r.String();
            case GgufValueType.UInt64: return r.U64();
            case GgufValueType.Int64: return (long)r.U64();
            case GgufValueType.Float64: return BitConverter.Int64BitsToDouble((long)r.U64());
            case GgufValueType.Array:
                if (depth > 0) throw r.Bad($"metadata '{key}': nested arrays are not supported");
                var elementType = (GgufValueType)r.U32();
                ulong count = r.Count();
                long minBytes = elementType switch
                {
                    GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                    GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                    GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                    GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
                    GgufValueType.String => r.Wide ? 8 : 4,
                    GgufValueType.Array => 12,
                    _ => throw r.Bad($"metadata '{key}': unknown array element type {(uint)elementType}"),
                };
                if (count > (ulong)(r.Remaining / minBytes))
                    throw r.Bad($"metadata '{key}': array of {count} elements runs past the end of the file");
                return ReadArray(r, elementType, (int)count, key);
            default:
                throw r.Bad($"metadata '{key}': unknown value type {(uint)type}");
        }
    }

    private static GgufArray ReadArray(Reader r, GgufValueType t, int n, string key)
    {
        Array values = t switch
        {
            GgufValueType.UInt8 => Fill(new byte[n], () => r.Byte()),
            GgufValueType.Int8 => Fill(new sbyte[n], () => (sbyte)r.Byte()),
            GgufValueType.UInt16 => Fill(new ushort[n], () => r.U16()),
            GgufValueType.Int16 => Fill(new short[n], () => (short)r.U16()),
            GgufValueType.UInt32 => Fill(new uint[n], () => r.U32()),
            GgufValueType.Int32 => Fill(new int[n], () => (int)r.U32()),
            GgufValueType.Float32 => Fill(new float[n], () => BitConverter.Int32BitsToSingle((int)r.U32())),
            GgufValueType.Bool => Fill(new bool[n], () => r.Byte() != 0),
            // Strings are collected as they parse rather than preallocated: a corrupt count cannot reserve memory
            // beyond what the file actually holds.
            GgufValueType.String => ReadStrings(r, n),
            GgufValueType.UInt64 => Fill(new ulong[n], () => r.U64()),
            GgufValueType.Int64 => Fill(new long[n], () => (long)r.U64()),
            GgufValueType.Float64 => Fill(new double[n], () => BitConverter.Int64BitsToDouble((long)r.U64())),
            _ => throw r.Bad($"metadata '{key}': arrays of {t} are not supported"),
        };
        return new GgufArray(t, values);
    }

    private static string[] ReadStrings(Reader r, int n)
    {
        var list = new List<string>(Math.Min(n, 1 << 16));
        for (int i = 0; i < n; i++) list.Add(r.String());
        return list.ToArray();
    }

    private static T[] Fill<T>(T[] a, Func<T> next)
    {
        for (int i = 0; i < a.Length; i++) a[i] = next();
        return a;
    }

    /// <summary>Bounds-checked little-endian cursor over the mapped header.</summary>
    private sealed class Reader(MappedFile file)
    {
        public long Position;
        public bool Wide = true;
        public long Remaining => file.Length - Position;

        public InvalidModelFileException Bad(string problem) => new(file.Path, problem);

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n > Remaining) throw Bad($"unexpected end of file at byte {Position} (truncated header?)");
            var s = file.Span(Position, n);
            Position += n;
            return s;
        }

        public byte Byte() => Take(1)[0];
        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public ulong Count() => Wide ? U64() : U32();

        public string String()
        {
            ulong len = Count();
            if (len > (ulong)Remaining) throw Bad($"string of {len} bytes at byte {Position} runs past the end of the file");
            if (len > int.MaxValue) throw Bad($"string of {len} bytes is too long");
            return Encoding.UTF8.GetString(Take((int)len));
        }
    }

    public void Dispose() => _file.Dispose();
}
