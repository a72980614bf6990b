using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace AnyBit.Models;

/// <summary>A repository at one commit: its commit hash and the paths of its files.</summary>
public sealed record HubRepoInfo(string Commit, IReadOnlyList<string> Files);

/// <summary>
/// What a HEAD of a file's resolve address says: its ETag (an LFS file's sha256, a git file's blob sha1), its size,
/// the commit it was served from, and where its bytes are to be fetched (a CDN address for LFS files).
/// </summary>
public sealed record HubFileMetadata(string Etag, long Size, string? Commit, Uri Location)
{
    /// <summary>True when the ETag is a sha256 (64 hex digits) the downloaded bytes can be checked against.</summary>
    public bool IsSha256 => Etag.Length == 64 && Etag.All(Uri.IsHexDigit);
}

/// <summary>
/// The Hub's HTTP routes huggingface_hub uses to download a snapshot: the repository's file list
/// (<c>/api/models/ID/revision/REV</c>) and each file's <c>/ID/resolve/COMMIT/PATH</c> (HEAD for its metadata, GET for
/// its bytes). Errors the user can act on (no such repository, revision or file; a gated repository; an unreachable
/// server) become one-line <see cref="AnyBitException"/>s.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;
    private readonly HttpClient _http;
    private readonly Uri _endpoint;
    private readonly string? _token;

    /// <param name="endpoint">The Hub's base address (HF_ENDPOINT), e.g. https://huggingface.co.</param>
    /// <param name="token">HF_TOKEN, sent to the Hub (never to the CDN it redirects to); null for none.</param>
    public HubClient(string endpoint, string? token)
    {
        _endpoint = new Uri(endpoint.TrimEnd('/') + "/");
        _token = token;
        // Redirects are followed by hand: a HEAD must stop at the Hub's redirect to the CDN, whose headers carry the
        // LFS file's sha256 and size, and the token goes only to the Hub's own host.
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("anybit/1.0");
    }

    public string Endpoint => _endpoint.ToString().TrimEnd('/');

    /// <summary>The commit <paramref name="revision"/> names and the files of the repository at it.</summary>
    public async Task<HubRepoInfo> RepoInfoAsync(string id, string revision, CancellationToken cancellation)
    {
        var url = new Uri(_endpoint, $"api/models/{id}/revision/{Uri.EscapeDataString(revision)}");
        using var response = await SendAsync(HttpMethod.Get, url, null, followAbsolute: true, cancellation);
        Check(response, id, revision, null);
        try
        {
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellation));
            string commit = doc.RootElement.GetProperty("sha").GetString() ?? throw new FormatException("sha is null");
            var files = doc.RootElement.TryGetProperty("siblings", out var siblings)
                ? siblings.EnumerateArray().Select(s => s.GetProperty("rfilename").GetString() ?? throw new FormatException("rfilename is null")).ToList()
                : [];
            return new HubRepoInfo(commit, files);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            throw new AnyBitException($"{id}@{revision}: {Endpoint} answered the repository query with no commit and file list ({e.Message})", e);
        }
    }

    /// <summary>HEAD of a file at a commit, following only the Hub's own (relative) redirects, as huggingface_hub does.</summary>
    public async Task<HubFileMetadata> FileMetadataAsync(string id, string commit, string file, CancellationToken cancellation)
    {
        var url = new Uri(_endpoint, $"{id}/resolve/{Uri.EscapeDataString(commit)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");
        using var response = await SendAsync(HttpMethod.Head, url, null, followAbsolute: false, cancellation);
        if (!IsRedirect(response.StatusCode)) Check(response, id, commit, file);
        string? etag = Header(response, "X-Linked-Etag") ?? Header(response, "ETag");
        string? size = Header(response, "X-Linked-Size") ?? response.Content.Headers.ContentLength?.ToString();
        if (etag is null || !long.TryParse(size, out long bytes) || bytes < 0)
            throw new AnyBitException($"{id}@{commit}: {file}: {Endpoint} gave no ETag or size for it (is HF_ENDPOINT a Hugging Face Hub?)");
        etag = NormalizeEtag(etag);
        var location = response.Headers.Location is { } loc ? new Uri(response.RequestMessage!.RequestUri!, loc) : response.RequestMessage!.RequestUri!;
        return new HubFileMetadata(etag, bytes, Header(response, "X-Repo-Commit"), location);
    }

    /// <summary>
    /// GET of a file's bytes from <paramref name="offset"/> on (a Range request when it is past 0), every redirect
    /// followed; the caller checks for 206 (the range) or 200 (the whole file) and disposes the response.
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(Uri location, long offset, string id, string file, CancellationToken cancellation)
    {
        var response = await SendAsync(HttpMethod.Get, location, offset > 0 ? new RangeHeaderValue(offset, null) : null, followAbsolute: true, cancellation);
        if (response.StatusCode is not HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            try { Check(response, id, null, file); }
            catch { response.Dispose(); throw; }
        }
        return response;
    }

    /// <summary>huggingface_hub's normalization: no weak prefix, no quotes.</summary>
    internal static string NormalizeEtag(string etag) => (etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag).Trim('"');

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, RangeHeaderValue? range, bool followAbsolute, CancellationToken cancellation)
    {
        for (int hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.AcceptEncoding.ParseAdd("identity");
            if (range is not null) request.Headers.Range = range;
            if (_token is not null && SameOrigin(url, _endpoint)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellation);
            }
            catch (HttpRequestException e)
            {
                throw new AnyBitException($"cannot reach {url.GetLeftPart(UriPartial.Authority)} ({e.Message}); HF_ENDPOINT sets the Hub's address", e);
            }
            if (!IsRedirect(response.StatusCode) || response.Headers.Location is not { } location) return response;
            if (!followAbsolute && location.IsAbsoluteUri) return response;
            if (hop == MaxRedirects)
            {
                response.Dispose();
                throw new AnyBitException($"{url}: more than {MaxRedirects} redirects");
            }
            url = new Uri(url, location);
            response.Dispose();
        }
    }

    private void Check(HttpResponseMessage response, string id, string? revision, string? file)
    {
        if (response.IsSuccessStatusCode) return;
        string code = Header(response, "X-Error-Code") ?? "";
        string at = revision is null ? id : $"{id}@{revision}";
        string what = file is null ? at : $"{at}: {file}";
        string message = code switch
        {
            "GatedRepo" => $"{id} is gated: accept its conditions on {Endpoint}/{id} and set HF_TOKEN to a token of that account",
            "RepoNotFound" => $"no model {id} on {Endpoint}{(_token is null ? " (if it is private or gated, set HF_TOKEN)" : "")}",
            "RevisionNotFound" => $"{id} has no revision '{revision}' on {Endpoint}",
            "EntryNotFound" => $"{at} has no file {file}",
            _ => (int)response.StatusCode switch
            {
                401 => _token is null
                    ? $"{what}: 401 Unauthorized from {Endpoint}: the model is private or gated, or does not exist; set HF_TOKEN to a token with access"
                    : $"{what}: 401 Unauthorized from {Endpoint}: HF_TOKEN is not accepted, or the model does not exist",
                403 => $"{what}: 403 Forbidden from {Endpoint}: this token has no access (for a gated model, accept its conditions on {Endpoint}/{id}; HF_TOKEN sets the token)",
                404 => file is null ? $"no model {id} at revision '{revision}' on {Endpoint}" : $"{at} has no file {file}",
                429 => $"{what}: 429 Too Many Requests from {Endpoint}: try again later (HF_TOKEN raises the limit)",
                _ => $"{what}: HTTP {(int)response.StatusCode} {response.ReasonPhrase} from {response.RequestMessage?.RequestUri?.GetLeftPart(UriPartial.Authority)}",
            },
        };
        if (Header(response, "X-Error-Message") is { Length: > 0 } detail && code.Length > 0) message += $" ({detail})";
        throw new AnyBitException(InvalidModelFileException.OneLine(message));
    }

    private static bool IsRedirect(HttpStatusCode status) => (int)status is 301 or 302 or 303 or 307 or 308;

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;

    public void Dispose() => _http.Dispose();
}
