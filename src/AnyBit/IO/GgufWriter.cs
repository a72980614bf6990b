using System.Text;

namespace AnyBit.IO;

/// <summary>
/// Writes GGUF v3 files as a stream: metadata and tensor descriptions first (every tensor's type and byte size must
/// be known up front), then each tensor's data in order, produced on demand so that only one tensor is in memory at
/// a time. The file is written under a temporary name and renamed into place when complete.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValueType Type, object Value)> _kvs = new();
    private readonly List<PendingTensor> _tensors = new();

    /// <summary>A tensor to write: its GGUF type id, shape (outermost first) and a callback that fills its bytes.</summary>
    public sealed record PendingTensor(string Name, long[] Shape, uint TypeId, long ByteLength, Action<Span<byte>> Produce);

    public int Alignment { get; init; } = 32;

    public IReadOnlyList<PendingTensor> Tensors => _tensors;

    public GgufWriter Add(string key, string value) => AddKv(key, GgufValueType.String, value);
    public GgufWriter Add(string key, uint value) => AddKv(key, GgufValueType.UInt32, value);
    public GgufWriter Add(string key, int value) => AddKv(key, GgufValueType.Int32, value);
    public GgufWriter Add(string key, float value) => AddKv(key, GgufValueType.Float32, value);
    public GgufWriter Add(string key, bool value) => AddKv(key, GgufValueType.Bool, value);
    public GgufWriter Add(string key, ulong value) => AddKv(key, GgufValueType.UInt64, value);
    public GgufWriter Add(string key, string[] values) => AddKv(key, GgufValueType.Array, new GgufArray(GgufValueType.String, values));
    public GgufWriter Add(string key, float[] values) => AddKv(key, GgufValueType.Array, new GgufArray(GgufValueType.Float32, values));
    public GgufWriter Add(string key, int[] values) => AddKv(key, GgufValueType.Array, new GgufArray(GgufValueType.Int32, values));

    /// <summary>Adds a value read from another GGUF file (any type, arrays included).</summary>
    public GgufWriter AddRaw(string key, object value) => value switch
    {
        byte v => AddKv(key, GgufValueType.UInt8, v),
        sbyte v => AddKv(key, GgufValueType.Int8, v),
        ushort v => AddKv(key, GgufValueType.UInt16, v),
        short v => AddKv(key, GgufValueType.Int16, v),
        uint v => AddKv(key, GgufValueType.UInt32, v),
        int v => AddKv(key, GgufValueType.Int32, v),
        float v => AddKv(key, GgufValueType.Float32, v),
        bool v => AddKv(key, GgufValueType.Bool, v),
        string v => AddKv(key, GgufValueType.String, v),
        ulong v => AddKv(key, GgufValueType.UInt64, v),
        long v => AddKv(key, GgufValueType.Int64, v),
        double v => AddKv(key, GgufValueType.Float64, v),
        GgufArray v => AddKv(key, GgufValueType.Array, v),
        _ => throw new ArgumentException($"unsupported metadata value {value.GetType().Name} for '{key}'"),
    };

    private GgufWriter AddKv(string key, GgufValueType type, object value)
    {
        _kvs.RemoveAll(k => k.Key == key);
        _kvs.Add((key, type, value));
        return this;
    }

    public bool HasKey(string key) => _kvs.Any(k => k.Key == key);

    /// <summary>Removes a key added earlier (no-op when absent).</summary>
    public GgufWriter Remove(string key)
    {
        _kvs.RemoveAll(k => k.Key == key);
        return this;
    }

    /// <summary>
    /// The metadata added so far, read as a GGUF reader will read it from the written file (values are kept in the
    /// reader's types); <paramref name="tensorShape"/> gives the shapes of the tensors the file will hold.
    /// </summary>
    public GgufMetadata PendingMetadata(Func<string, long[]?> tensorShape, string source) =>
        new(_kvs.ToDictionary(k => k.Key, k => k.Value, StringComparer.Ordinal), tensorShape, source);

    public GgufWriter AddTensor(string name, long[] shape, uint typeId, long byteLength, Action<Span<byte>> produce)
    {
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor '{name}' added twice");
        _tensors.Add(new PendingTensor(name, shape, typeId, byteLength, produce));
        return this;
    }

    /// <summary>Writes the file; <paramref name="progress"/> is told after each tensor (index, total, name).</summary>
    public void Write(string path, Action<int, int, string>? progress = null, CancellationToken cancellation = default)
    {
        AtomicFile.Write(path, stream =>
        {
            WriteHeader(stream);
            int index = 0;
            foreach (var t in _tensors)
            {
                cancellation.ThrowIfCancellationRequested();
                if (t.ByteLength > int.MaxValue) throw new AnyBitException($"{t.Name}: tensors above 2 GiB are not supported by the writer yet");
                var buffer = GC.AllocateUninitializedArray<byte>((int)t.ByteLength);
                t.Produce(buffer);
                stream.Write(buffer);
                WritePadding(stream);
                progress?.Invoke(++index, _tensors.Count, t.Name);
            }
        }, cancellation);
    }

    /// <summary>The length of the file <see cref="Write"/> makes, without producing any tensor.</summary>
    public long Length
    {
        get
        {
            using var counter = new CountingStream();
            WriteHeader(counter);
            return counter.Position + _tensors.Sum(t => Pad(t.ByteLength));
        }
    }

    // Header, metadata and tensor infos, padded to the alignment where the tensor data starts.
    private void WriteHeader(Stream stream)
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(0x46554747u);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_kvs.Count);
        foreach (var (key, type, value) in _kvs)
        {
            WriteString(w, key);
            w.Write((uint)type);
            WriteValue(w, type, value);
        }
        ulong offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Shape.Length);
            for (int d = t.Shape.Length - 1; d >= 0; d--) w.Write((ulong)t.Shape[d]); // ne[0] = innermost
            w.Write(t.TypeId);
            w.Write(offset);
            offset += (ulong)Pad(t.ByteLength);
        }
        w.Flush();
        WritePadding(stream);
    }

    /// <summary>A write-only stream that only counts: <see cref="Length"/> measures the header with it.</summary>
    private sealed class CountingStream : Stream
    {
        private long _position;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _position;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => _position += count;
        public override void Write(ReadOnlySpan<byte> buffer) => _position += buffer.Length;
        public override void WriteByte(byte value) => _position++;
    }

    private long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    private void WritePadding(Stream s)
    {
        long pad = Pad(s.Position) - s.Position;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
                var arr = (GgufArray)value;
                w.Write((uint)arr.ElementType);
                w.Write((ulong)arr.Count);
                foreach (object item in arr.Values) WriteValue(w, arr.ElementType, item);
                break;
            default: throw new ArgumentException($"cannot write value type {type}");
        }
    }
}
