using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using AnyBit.IO;

namespace AnyBit.Models;

/// <summary>Where and how <see cref="HubDownloader"/> pulls.</summary>
public sealed record HubPullOptions
{
    /// <summary>The Hub's base address (HF_ENDPOINT).</summary>
    public string Endpoint { get; init; } = HubEnvironment.DefaultEndpoint;

    /// <summary>HF_TOKEN, or null.</summary>
    public string? Token { get; init; }

    /// <summary>The hub cache folder (<see cref="HubCache.Root"/>).</summary>
    public required string Cache { get; init; }

    /// <summary>fnmatch patterns (<see cref="HubGlob"/>); empty pulls every file.</summary>
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>Files downloaded at once (huggingface_hub's default is 8).</summary>
    public int MaxWorkers { get; init; } = 8;

    /// <summary>How many times a dropped transfer is resumed within one pull before the pull gives up.</summary>
    public int Retries { get; init; } = 5;

    /// <summary>A transfer that delivers nothing for this long counts as dropped.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>One file of a pull: its path in the repository, its size, and whether it was fetched (false: already cached).</summary>
public sealed record HubPulledFile(string Path, long Bytes, bool Downloaded);

/// <summary>A finished pull: the model id, the revision asked for, its commit and the snapshot folder.</summary>
public sealed record HubPullResult(string Id, string Revision, string Commit, string Snapshot, IReadOnlyList<HubPulledFile> Files);

/// <summary>Progress of a pull, called from the download workers (several threads at once).</summary>
public interface IHubPullProgress
{
    /// <summary>A file's transfer begins; <paramref name="have"/> bytes of <paramref name="size"/> are already there (a resumed file).</summary>
    void Started(string path, long size, long have);

    /// <summary><paramref name="bytes"/> more bytes of the file arrived (negative when a restart discards what was there).</summary>
    void Advanced(string path, long bytes);

    /// <summary>The file is in the snapshot (downloaded, or already cached when <paramref name="downloaded"/> is false).</summary>
    void Finished(string path, long size, bool downloaded);
}

/// <summary>
/// <c>anybit pull</c>: a model's files from the Hub into the local cache, laid out as huggingface_hub's
/// <c>snapshot_download</c> lays it out so that both share it: <c>blobs/ETAG</c> holds each file's bytes,
/// <c>snapshots/COMMIT/PATH</c> is a relative link to <c>../../blobs/ETAG</c>, <c>refs/REVISION</c> holds the commit.
/// A file arrives as <c>blobs/ETAG.incomplete</c>, which a dropped transfer, a later pull or a Ctrl-C resumes with a
/// Range request; it becomes the blob only once its size and (for LFS files, whose ETag is a sha256) its sha256 match
/// what the Hub announced. A file that does not match is deleted and named in the error.
/// </summary>
public static class HubDownloader
{
    private const int BufferSize = 1 << 20;

    /// <summary>Pulls <paramref name="model"/> (<c>ORG/NAME[@REVISION]</c>, revision main by default).</summary>
    public static async Task<HubPullResult> PullAsync(string model, HubPullOptions options, IHubPullProgress? progress = null, CancellationToken cancellation = default)
    {
        if (!HubCache.TryParseId(model, out string id, out string revision))
            throw new AnyBitException($"'{model}' is not a model id: use ORG/NAME or ORG/NAME@REVISION");
        if (options.MaxWorkers < 1) throw new AnyBitException($"--max-workers {options.MaxWorkers} must be at least 1");
        using var client = new HubClient(options.Endpoint, options.Token);
        var info = await client.RepoInfoAsync(id, revision, cancellation);
        if (!IsSafeName(info.Commit)) throw new AnyBitException($"{id}@{revision}: {client.Endpoint} named a commit '{info.Commit}' that is no folder name");
        var files = info.Files.Where(f => HubGlob.MatchesAny(f, options.Include)).ToList();
        if (files.Count == 0)
            throw new AnyBitException(options.Include.Count == 0 ? $"{id}@{revision} has no files"
                : $"no file of {id}@{revision} matches --include {string.Join(" --include ", options.Include)} (it has {string.Join(", ", info.Files.Take(12))}{(info.Files.Count > 12 ? ", …" : "")})");
        foreach (string f in files)
            if (!IsSafePath(f)) throw new AnyBitException($"{id}@{revision}: {client.Endpoint} lists a file '{f}' that is no relative path");

        string repo = HubCache.RepoFolder(options.Cache, id);
        string snapshot = Path.Combine(repo, "snapshots", info.Commit);
        var pulled = new HubPulledFile[files.Count];
        var blobLocks = new ConcurrentDictionary<string, SemaphoreSlim>(StringComparer.Ordinal);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        Exception? failure = null;
        try
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, files.Count), new ParallelOptions { MaxDegreeOfParallelism = options.MaxWorkers, CancellationToken = stop.Token },
                async (i, token) =>
                {
                    try
                    {
                        pulled[i] = await PullFileAsync(client, id, info.Commit, files[i], repo, options, blobLocks, progress, token);
                    }
                    catch (Exception e) when (!token.IsCancellationRequested || e is not OperationCanceledException)
                    {
                        // The first failure stops the other transfers (they keep their .incomplete files) and is what is reported.
                        Interlocked.CompareExchange(ref failure, e, null);
                        stop.Cancel();
                    }
                });
        }
        catch (OperationCanceledException) when (failure is not null && !cancellation.IsCancellationRequested)
        {
        }
        if (failure is not null) ExceptionDispatchInfo.Throw(failure);
        cancellation.ThrowIfCancellationRequested();
        // The ref moves to the new commit only once its snapshot is complete: a failed pull leaves the previous one in use.
        if (revision != info.Commit)
            AtomicFile.Write(Path.Combine(repo, "refs", revision), s => s.Write(System.Text.Encoding.UTF8.GetBytes(info.Commit)));
        return new HubPullResult(id, revision, info.Commit, snapshot, pulled);
    }

    private static async Task<HubPulledFile> PullFileAsync(HubClient client, string id, string commit, string file, string repo,
        HubPullOptions options, ConcurrentDictionary<string, SemaphoreSlim> blobLocks, IHubPullProgress? progress, CancellationToken cancellation)
    {
        string pointer = Path.Combine(repo, "snapshots", commit, file);
        if (File.Exists(pointer) && Target(pointer) is { Exists: true } cached)
        {
            // A snapshot is immutable: a file already linked in it is not asked for again (as huggingface_hub does for a commit).
            progress?.Finished(file, cached.Length, false);
            return new HubPulledFile(file, cached.Length, false);
        }
        var meta = await client.FileMetadataAsync(id, commit, file, cancellation);
        if (!IsSafeName(meta.Etag)) throw new AnyBitException($"{id}@{commit}: {file}: the ETag '{meta.Etag}' is no file name");
        string blob = Path.Combine(repo, "blobs", meta.Etag);
        // Files with the same content share a blob: the second waits for the first's download, then only links.
        var gate = blobLocks.GetOrAdd(meta.Etag, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellation);
        bool downloaded;
        try
        {
            downloaded = !File.Exists(blob);
            if (downloaded) await DownloadBlobAsync(client, id, file, meta, blob, options, progress, cancellation);
        }
        finally
        {
            gate.Release();
        }
        Link(blob, pointer);
        progress?.Finished(file, meta.Size, downloaded);
        return new HubPulledFile(file, meta.Size, downloaded);
    }

    /// <summary>The file's bytes into <c>BLOB.incomplete</c> (resumed from its length), checked, then renamed to the blob.</summary>
    private static async Task DownloadBlobAsync(HubClient client, string id, string file, HubFileMetadata meta, string blob,
        HubPullOptions options, IHubPullProgress? progress, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        string incomplete = blob + ".incomplete";
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            // FileShare.None: a second pull of the same blob (another process) fails to open it instead of interleaving.
            await using (var stream = OpenIncomplete(incomplete, id, file))
            {
                if (stream.Length > meta.Size) stream.SetLength(0);
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                if (meta.IsSha256)
                    for (int n; (n = await stream.ReadAsync(buffer, cancellation)) > 0;) sha.AppendData(buffer, 0, n);
                stream.Seek(0, SeekOrigin.End);
                progress?.Started(file, meta.Size, stream.Length);
                for (int attempt = 0; stream.Length < meta.Size; attempt++)
                {
                    try
                    {
                        await TransferAsync(client, id, file, meta, stream, sha, buffer, options.ReadTimeout, progress, cancellation);
                    }
                    catch (IOException e) when (!cancellation.IsCancellationRequested)
                    {
                        await stream.FlushAsync(CancellationToken.None);
                        if (attempt >= options.Retries)
                            throw new AnyBitException($"{id}: {file}: the transfer broke off after {stream.Length:N0} of {meta.Size:N0} bytes ({e.Message}); pull again to resume", e);
                    }
                }
                if (stream.Length != meta.Size)
                    throw Refuse(incomplete, $"{id}: {file}: received {stream.Length:N0} bytes, the Hub announced {meta.Size:N0}; the download was deleted", stream);
                if (meta.IsSha256 && Convert.ToHexStringLower(sha.GetHashAndReset()) is var actual && actual != meta.Etag.ToLowerInvariant())
                    throw Refuse(incomplete, $"{id}: {file}: sha256 {actual} does not match the Hub's {meta.Etag}; the download was deleted", stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(incomplete, blob, overwrite: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static FileStream OpenIncomplete(string incomplete, string id, string file)
    {
        try
        {
            return new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.Asynchronous);
        }
        catch (IOException e) when (File.Exists(incomplete))
        {
            throw new AnyBitException($"{id}: {file}: cannot open {incomplete} (is another pull of this model running?): {e.Message}", e);
        }
    }

    /// <summary>One GET from the stream's length on, appended to it; IOException when the transfer stalls or breaks off.</summary>
    private static async Task TransferAsync(HubClient client, string id, string file, HubFileMetadata meta, FileStream stream, IncrementalHash sha,
        byte[] buffer, TimeSpan readTimeout, IHubPullProgress? progress, CancellationToken cancellation)
    {
        long offset = stream.Length;
        using var response = await client.GetAsync(meta.Location, offset, id, file, cancellation);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The partial file does not fit what the server has: start over.
            Restart(stream, sha, meta, file, progress);
            return;
        }
        if (response.StatusCode != HttpStatusCode.PartialContent && offset > 0)
            Restart(stream, sha, meta, file, progress); // the server ignored the Range: the whole file follows
        else if (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From is long from && from != offset)
            throw new AnyBitException($"{id}: {file}: asked for bytes from {offset}, the server sent from {from}");
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        await using var body = await response.Content.ReadAsStreamAsync(cancellation);
        while (true)
        {
            stall.CancelAfter(readTimeout);
            int n;
            try
            {
                n = await body.ReadAsync(buffer, stall.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new IOException($"no data for {readTimeout.TotalSeconds:F0} s");
            }
            if (n == 0) break;
            if (stream.Length + n > meta.Size)
                throw Refuse(stream.Name, $"{id}: {file}: the server sent more than the {meta.Size:N0} bytes the Hub announced; the download was deleted", stream);
            await stream.WriteAsync(buffer.AsMemory(0, n), cancellation);
            if (meta.IsSha256) sha.AppendData(buffer, 0, n);
            progress?.Advanced(file, n);
        }
        if (stream.Length < meta.Size) throw new IOException("the response ended early");
    }

    private static void Restart(FileStream stream, IncrementalHash sha, HubFileMetadata meta, string file, IHubPullProgress? progress)
    {
        progress?.Advanced(file, -stream.Length);
        stream.SetLength(0);
        sha.GetHashAndReset();
    }

    /// <summary>Closes and deletes a download that failed its check, and returns the error to throw.</summary>
    private static AnyBitException Refuse(string incomplete, string message, FileStream? open = null)
    {
        open?.Dispose();
        try { File.Delete(incomplete); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return new AnyBitException(message);
    }

    /// <summary>
    /// <paramref name="pointer"/> made a relative link to <paramref name="blob"/> (../../blobs/ETAG, one more ../ per
    /// folder level of the file's path), as huggingface_hub links; a copy where links cannot be made (Windows without the
    /// privilege).
    /// </summary>
    private static void Link(string blob, string pointer)
    {
        string folder = Path.GetDirectoryName(pointer)!;
        Directory.CreateDirectory(folder);
        if (File.Exists(pointer) || new FileInfo(pointer).LinkTarget is not null) File.Delete(pointer);
        try
        {
            File.CreateSymbolicLink(pointer, Path.GetRelativePath(folder, blob));
        }
        catch (Exception e) when (OperatingSystem.IsWindows() && e is IOException or UnauthorizedAccessException)
        {
            File.Copy(blob, pointer, overwrite: true);
        }
    }

    private static FileInfo? Target(string pointer)
    {
        var info = new FileInfo(pointer);
        return info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
    }

    private static bool IsSafeName(string name) =>
        name.Length > 0 && name != "." && name != ".." && name.IndexOfAny(['/', '\\', '\0', ':']) < 0;

    private static bool IsSafePath(string path) =>
        path.Length > 0 && !Path.IsPathRooted(path) && !path.Contains('\\') && path.Split('/').All(IsSafeName);
}
