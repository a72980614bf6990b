using System.IO.MemoryMappedFiles;

namespace AnyBit.IO;

/// <summary>
/// A read-only memory map of a whole file. Tensors are views into it, so opening a checkpoint costs only its header:
/// the operating system pages weights in when a kernel first touches them.
/// </summary>
public sealed unsafe partial class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;
    private readonly bool _owned;

    /// <summary>Path the file was opened from (used in error messages).</summary>
    public string Path { get; }

    /// <summary>Length of the file in bytes.</summary>
    public long Length { get; }

    /// <summary>First byte of the mapping; valid until <see cref="Dispose"/>.</summary>
    public byte* Pointer => _pointer;

    public MappedFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new InvalidModelFileException(path, "file not found");
        try
        {
            Length = LengthOf(path);
            // A zero-length file cannot be mapped; callers see an empty span and reject it themselves.
            if (Length == 0) return;
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new InvalidModelFileException(path, $"cannot open: {e.Message}");
        }
    }

    private MappedFile(string path, long length)
    {
        Path = path; Length = length; _owned = true;
        _pointer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Math.Max(1, length), 64);
        System.Runtime.InteropServices.NativeMemory.Clear(_pointer, (nuint)length);
    }

    /// <summary>
    /// Zeroed native memory in place of a file, for tensors made at load (a checkpoint's packed weights repacked into
    /// an AnyBit layout); <paramref name="path"/> is the file they came from, for errors. <see cref="Writable"/> fills it.
    /// </summary>
    public static MappedFile InMemory(string path, long length) => new(path, length);

    /// <summary>The bytes of a <see cref="InMemory"/> block, to fill.</summary>
    public Span<byte> Writable(long offset, int length)
    {
        if (!_owned) throw new InvalidOperationException("a mapped file is read-only");
        if (offset < 0 || length < 0 || offset + length > Length) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>(_pointer + offset, length);
    }

    /// <summary>
    /// The length of the file <paramref name="path"/> names, through symbolic links: the Hugging Face cache keeps
    /// every file of a snapshot as a link into its blobs, and <see cref="FileInfo.Length"/> is the link's own length.
    /// </summary>
    public static long LengthOf(string path)
    {
        using var handle = File.OpenHandle(path);
        return RandomAccess.GetLength(handle);
    }

    /// <summary>A span over [offset, offset+length); the range must have been validated against <see cref="Length"/>.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new InvalidModelFileException(Path, $"read of {length} bytes at offset {offset} is past the end of the file ({Length} bytes)");
        return new ReadOnlySpan<byte>(_pointer + offset, length);
    }

    /// <summary>
    /// Drops this process's pages of [offset, offset+length) once their bytes have been copied out (repacked or
    /// decoded at load): a later read faults them in again from the page cache, so nothing changes but the resident
    /// set. Without it a model repacked from a file of its own size peaked at about twice that while loading
    /// (the mapped pages beside the copy). Advice only: a no-op off Linux, for in-memory blocks, and on failure.
    /// </summary>
    public void Release(long offset, long length)
    {
        if (_owned || _pointer == null || length <= 0 || !OperatingSystem.IsLinux()) return;
        // Whole pages inside the range only: a page shared with a neighbouring tensor stays.
        long page = Environment.SystemPageSize;
        long from = ((long)_pointer + Math.Max(0, offset) + page - 1) & ~(page - 1);
        long to = ((long)_pointer + Math.Min(Length, offset + length)) & ~(page - 1);
        if (to <= from) return;
        try { _ = Madvise((byte*)from, (nuint)(to - from), MADV_DONTNEED); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { /* advice only */ }
    }

    private const int MADV_DONTNEED = 4;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(byte* address, nuint length, int advice);

    public void Dispose()
    {
        if (_owned)
        {
            if (_pointer != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(_pointer);
            _pointer = null;
            return;
        }
        if (_view is not null && _pointer != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
