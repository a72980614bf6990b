using System.Text;

namespace AnyBit.Tests;

/// <summary>
/// Writes GGUF bytes by hand for tests, following the specification directly (independent of the reader under test),
/// with knobs to produce malformed files.
/// </summary>
internal sealed class GgufBuilder
{
    private readonly List<Action<BinaryWriter>> _kvs = new();
    private readonly List<(string Name, ulong[] Ne, uint Type, byte[] Data)> _tensors = new();
    public uint Version = 3;
    public int Alignment = 32;
    public ulong? TensorCountOverride, KvCountOverride;
    public ulong? OffsetOverride;

    private bool Wide => Version >= 2;

    private void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        if (Wide) w.Write((ulong)b.Length); else w.Write((uint)b.Length);
        w.Write(b);
    }

    public GgufBuilder Kv(string key, uint type, Action<BinaryWriter> value)
    {
        _kvs.Add(w => { Str(w, key); w.Write(type); value(w); });
        return this;
    }

    public GgufBuilder KvString(string key, string value) => Kv(key, 8, w => Str(w, value));
    public GgufBuilder KvU32(string key, uint value) => Kv(key, 4, w => w.Write(value));
    public GgufBuilder KvF32(string key, float value) => Kv(key, 6, w => w.Write(value));
    public GgufBuilder KvStringArray(string key, string[] values) => Kv(key, 9, w =>
    {
        w.Write(8u);
        if (Wide) w.Write((ulong)values.Length); else w.Write((uint)values.Length);
        foreach (var v in values) Str(w, v);
    });

    public GgufBuilder Tensor(string name, ulong[] ne, uint type, byte[] data)
    {
        _tensors.Add((name, ne, type, data));
        return this;
    }

    public byte[] Build()
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(0x46554747u);
        w.Write(Version);
        ulong tc = TensorCountOverride ?? (ulong)_tensors.Count, kc = KvCountOverride ?? (ulong)_kvs.Count;
        if (Wide) { w.Write(tc); w.Write(kc); } else { w.Write((uint)tc); w.Write((uint)kc); }
        foreach (var kv in _kvs) kv(w);
        ulong offset = 0;
        var offsets = new List<ulong>();
        foreach (var t in _tensors)
        {
            Str(w, t.Name);
            w.Write((uint)t.Ne.Length);
            foreach (var d in t.Ne) { if (Wide) w.Write(d); else w.Write((uint)d); }
            w.Write(t.Type);
            w.Write(OffsetOverride ?? offset);
            offsets.Add(offset);
            offset += (ulong)((t.Data.Length + Alignment - 1) / Alignment * Alignment);
        }
        while (ms.Position % Alignment != 0) w.Write((byte)0);
        foreach (var t in _tensors)
        {
            w.Write(t.Data);
            while (ms.Position % Alignment != 0) w.Write((byte)0);
        }
        w.Flush();
        return ms.ToArray();
    }
}
