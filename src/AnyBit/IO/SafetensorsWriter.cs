using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace AnyBit.IO;

/// <summary>
/// Writes a .safetensors file. Tensors are laid out in the order added, each aligned to 8 bytes as the reference
/// writer does; the file appears under its final name only once it is complete.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, TensorType Type, long[] Shape, byte[] Data)> _tensors = new();
    private readonly Dictionary<string, string> _metadata = new();

    /// <summary>Adds a string to the header's <c>__metadata__</c>.</summary>
    public SafetensorsWriter AddMetadata(string key, string value) { _metadata[key] = value; return this; }

    /// <summary>Adds a tensor from raw little-endian bytes; the length must match shape × element size.</summary>
    public SafetensorsWriter Add(string name, TensorType type, long[] shape, byte[] data)
    {
        long need = TensorTypes.ByteSize(type, TensorTypes.ElementCount(shape));
        if (need != data.Length) throw new ArgumentException($"{name}: {data.Length} bytes given, shape needs {need}");
        SafetensorsFile.DTypeName(type); // throws for types safetensors cannot hold
        _tensors.Add((name, type, shape, data));
        return this;
    }

    /// <summary>Adds a float32 tensor.</summary>
    public SafetensorsWriter Add(string name, long[] shape, ReadOnlySpan<float> values) =>
        Add(name, TensorType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>Adds an int32 tensor.</summary>
    public SafetensorsWriter Add(string name, long[] shape, ReadOnlySpan<int> values) =>
        Add(name, TensorType.I32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>Writes the file through a temporary name and renames it into place.</summary>
    public void Write(string path)
    {
        var header = new Dictionary<string, object>();
        if (_metadata.Count > 0) header["__metadata__"] = _metadata;
        long offset = 0;
        foreach (var t in _tensors)
        {
            header[t.Name] = new Dictionary<string, object>
            {
                ["dtype"] = SafetensorsFile.DTypeName(t.Type),
                ["shape"] = t.Shape,
                ["data_offsets"] = new[] { offset, offset + t.Data.Length },
            };
            offset += t.Data.Length;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < padded; i++) headerBytes[i] = (byte)' ';

        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(headerBytes);
            foreach (var t in _tensors) stream.Write(t.Data);
        });
    }
}
