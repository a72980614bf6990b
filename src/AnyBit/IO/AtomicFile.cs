namespace AnyBit.IO;

/// <summary>
/// Writes a file so that it either appears complete under its final name or not at all: data goes to a temporary
/// file beside the target, which is renamed over the target only after a successful flush. A crash, an exception or
/// a Ctrl-C leaves at most a stray temporary file, never a truncated output.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> writeContent, CancellationToken cancellation = default)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.partial");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                writeContent(stream);
                cancellation.ThrowIfCancellationRequested();
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
