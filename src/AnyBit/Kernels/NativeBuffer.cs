using System.Runtime.InteropServices;

namespace AnyBit.Kernels;

/// <summary>
/// A 64-byte aligned float array in native memory: stable pointers for the kernels, no GC scanning of weight-sized
/// arrays, and cache-line aligned rows for vector loads.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    private float* _data;
    private static long s_allocatedBytes;

    /// <summary>Bytes held by all live buffers in the process (weights, KV caches, scratch): for health reports.</summary>
    public static long AllocatedBytes => Interlocked.Read(ref s_allocatedBytes);

    public NativeBuffer(long length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
        _data = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, length) * sizeof(float), 64);
        NativeMemory.Clear(_data, (nuint)length * sizeof(float));
        Interlocked.Add(ref s_allocatedBytes, length * sizeof(float));
    }

    public NativeBuffer(ReadOnlySpan<float> values) : this(values.Length) => values.CopyTo(Span);

    public long Length { get; }
    public float* Pointer => _data;

    /// <summary>The whole buffer as a span (buffers under 2^31 elements).</summary>
    public Span<float> Span => new(_data, checked((int)Length));

    public Span<float> Slice(long start, int length)
    {
        if (start < 0 || start + length > Length) throw new ArgumentOutOfRangeException(nameof(start));
        return new Span<float>(_data + start, length);
    }

    public void Dispose()
    {
        if (_data == null) return;
        NativeMemory.AlignedFree(_data);
        _data = null;
        Interlocked.Add(ref s_allocatedBytes, -Length * sizeof(float));
    }
}
