using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AnyBit.Tests;

/// <summary>
/// A Hugging Face Hub on a free loopback port (Kestrel) serving one repository from real files, with the routes and
/// headers huggingface_hub reads: <c>GET /api/models/ID/revision/REV</c> (sha, siblings) and HEAD/GET
/// <c>/ID/resolve/REV/PATH</c>. A git file answers 200 with its git blob sha1 as ETag; an LFS file (safetensors and
/// tokenizer.json) answers 302 to <c>/cdn/SHA256</c> on a second port (another origin, as the Hub's CDN is) with X-Linked-Etag (its sha256, quoted) and X-Linked-Size, and
/// a weak ETag that is not the sha256, as the Hub does. Bytes are served with Range support (206). Tests can make a
/// file's first GETs break off, serve other bytes than its ETag promises, or require a token.
/// </summary>
public sealed class LoopbackHub : IDisposable
{
    public sealed record ServedFile(string Path, string Source, long Size, string Etag, bool Lfs);
    public sealed record Request(string Method, string Path, string? Range, string? Authorization);

    private readonly WebApplication _app;
    private readonly Dictionary<string, ServedFile> _files;
    private readonly string _cdn;

    public LoopbackHub(string repoId, string commit, IEnumerable<(string Path, string Source)> files)
    {
        RepoId = repoId;
        Commit = commit;
        _files = files.ToDictionary(f => f.Path, f => Describe(f.Path, f.Source));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0", "http://127.0.0.1:0"); // the Hub, and its CDN on another origin
        _app = builder.Build();
        _app.Run(HandleAsync);
        _app.StartAsync().GetAwaiter().GetResult();
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => a.TrimEnd('/')).ToArray();
        (Endpoint, _cdn) = (addresses[0], addresses[1]);
    }

    /// <summary>Serves every file of a folder (not recursing) under its file name.</summary>
    public static LoopbackHub FromFolder(string repoId, string commit, string folder, params (string Path, string Source)[] extra) =>
        new(repoId, commit, Directory.GetFiles(folder).Select(f => (Path.GetFileName(f), f)).Concat(extra));

    public string RepoId { get; }
    public string Commit { get; }
    public string Endpoint { get; }
    public IReadOnlyCollection<ServedFile> Files => _files.Values;
    public ServedFile File(string path) => _files[path];

    /// <summary>Every request, in arrival order.</summary>
    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>When set, the API and resolve routes answer 401 GatedRepo without <c>Authorization: Bearer TOKEN</c>.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Path → how many of its next GETs break off (the connection aborted) after <see cref="DropAfterBytes"/> bytes.</summary>
    public ConcurrentDictionary<string, int> DropGets { get; } = new();

    public long DropAfterBytes { get; set; } = 3 << 20;

    /// <summary>When set, this repository id answers with a relative 307 to the real one, as the Hub does for a renamed repository.</summary>
    public string? RenamedFrom { get; set; }

    /// <summary>Path → bytes served in place of the file's (its ETag and size unchanged).</summary>
    public ConcurrentDictionary<string, byte[]> Corrupt { get; } = new();

    private static ServedFile Describe(string path, string source)
    {
        var bytes = System.IO.File.ReadAllBytes(source);
        bool lfs = path.EndsWith(".safetensors", StringComparison.Ordinal) || path == "tokenizer.json";
        string etag = lfs ? Convert.ToHexStringLower(SHA256.HashData(bytes)) : GitBlobSha1(bytes);
        return new ServedFile(path, source, bytes.Length, etag, lfs);
    }

    /// <summary>The blob id git gives the bytes (<c>git hash-object</c>), the Hub's ETag of a file kept in git.</summary>
    public static string GitBlobSha1(byte[] bytes) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));

    private async Task HandleAsync(HttpContext ctx)
    {
        var req = ctx.Request;
        string path = Uri.UnescapeDataString(req.Path.Value ?? "");
        Requests.Enqueue(new Request(req.Method, path, req.Headers.Range.ToString() is { Length: > 0 } r ? r : null,
            req.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null));
        var res = ctx.Response;
        if (path.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            var file = _files.Values.FirstOrDefault(f => f.Lfs && f.Etag == path["/cdn/".Length..]);
            if (file is null) { res.StatusCode = 404; return; }
            res.Headers.ETag = $"\"{file.Etag}\"";
            await ServeBytesAsync(ctx, file);
            return;
        }
        if (RenamedFrom is not null && (path.StartsWith($"/api/models/{RenamedFrom}/", StringComparison.Ordinal) || path.StartsWith($"/{RenamedFrom}/", StringComparison.Ordinal)))
        {
            res.StatusCode = 307;
            res.Headers.Location = req.Path.Value!.Replace($"/{RenamedFrom}/", $"/{RepoId}/");
            return;
        }
        string api = $"/api/models/{RepoId}/revision/", resolve = $"/{RepoId}/resolve/";
        if (!path.StartsWith(api, StringComparison.Ordinal) && !path.StartsWith(resolve, StringComparison.Ordinal))
        {
            Error(res, 404, "RepoNotFound", "Repository not found");
            return;
        }
        if (RequiredToken is not null && req.Headers.Authorization.ToString() != $"Bearer {RequiredToken}")
        {
            Error(res, 401, "GatedRepo", $"Access to model {RepoId} is restricted. You must have access to it and be authenticated to access it. Please log in.");
            return;
        }
        bool isApi = path.StartsWith(api, StringComparison.Ordinal);
        string rest = path[(isApi ? api : resolve).Length..];
        string revision = isApi ? rest : rest[..Math.Max(rest.IndexOf('/'), 0)];
        if (revision != "main" && revision != Commit)
        {
            Error(res, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }
        if (isApi)
        {
            res.ContentType = "application/json";
            await res.WriteAsync(JsonSerializer.Serialize(new { id = RepoId, sha = Commit, siblings = _files.Keys.Order(StringComparer.Ordinal).Select(f => new { rfilename = f }) }));
            return;
        }
        if (!_files.TryGetValue(rest[(revision.Length + 1)..], out var served))
        {
            Error(res, 404, "EntryNotFound", "Entry not found");
            return;
        }
        res.Headers["X-Repo-Commit"] = Commit;
        if (served.Lfs)
        {
            res.StatusCode = 302;
            res.Headers.Location = $"{_cdn}/cdn/{served.Etag}";
            res.Headers.ETag = $"W/\"{GitBlobSha1(Encoding.ASCII.GetBytes(served.Etag))}\"";
            res.Headers["X-Linked-Etag"] = $"\"{served.Etag}\"";
            res.Headers["X-Linked-Size"] = served.Size.ToString();
            return;
        }
        res.Headers.ETag = $"\"{served.Etag}\"";
        await ServeBytesAsync(ctx, served);
    }

    private async Task ServeBytesAsync(HttpContext ctx, ServedFile file)
    {
        var res = ctx.Response;
        byte[] bytes = Corrupt.TryGetValue(file.Path, out var bad) ? bad : await System.IO.File.ReadAllBytesAsync(file.Source);
        long from = 0;
        if (ctx.Request.Headers.Range.ToString() is { Length: > 0 } range)
        {
            from = long.Parse(range["bytes=".Length..].TrimEnd('-'));
            if (from >= bytes.Length)
            {
                res.StatusCode = 416;
                res.Headers.ContentRange = $"bytes */{bytes.Length}";
                return;
            }
            res.StatusCode = 206;
            res.Headers.ContentRange = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
        }
        res.ContentLength = bytes.Length - from;
        if (HttpMethods.IsHead(ctx.Request.Method)) return;
        bool drop = false;
        DropGets.AddOrUpdate(file.Path, 0, (_, n) => { drop = n > 0; return Math.Max(n - 1, 0); });
        if (drop)
        {
            int sent = (int)Math.Min(DropAfterBytes, bytes.Length - from);
            await res.Body.WriteAsync(bytes.AsMemory((int)from, sent));
            await res.Body.FlushAsync();
            await Task.Delay(200); // let the client read what was sent before the connection is reset
            ctx.Abort();
            return;
        }
        await res.Body.WriteAsync(bytes.AsMemory((int)from));
    }

    private static void Error(HttpResponse res, int status, string code, string message)
    {
        res.StatusCode = status;
        res.Headers["X-Error-Code"] = code;
        res.Headers["X-Error-Message"] = message;
    }

    public void Dispose()
    {
        _app.StopAsync().GetAwaiter().GetResult();
        ((IDisposable)_app).Dispose();
    }
}
