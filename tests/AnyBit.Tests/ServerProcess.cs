using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace AnyBit.Tests;

/// <summary>A real <c>anybit serve</c> child process on a free loopback port, stopped when disposed.</summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _stderr = new();

    public ServerProcess(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "AnyBit.Cli.dll"));
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add("0");
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var line = _process.StandardOutput.ReadLineAsync();
            if (!line.Wait(TimeSpan.FromSeconds(60)) || line.Result is null)
            {
                Dispose();
                throw new InvalidOperationException("anybit serve did not start: " + Stderr);
            }
            if (line.Result.StartsWith("listening on ", StringComparison.Ordinal))
            {
                BaseUri = new Uri(line.Result["listening on ".Length..].Trim() + "/");
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        _ = Task.Run(async () => { while (await _process.StandardOutput.ReadLineAsync() is not null) { } });
    }

    public Uri BaseUri { get; }
    public int ProcessId => _process.Id;

    public string Stderr
    {
        get { lock (_stderr) return _stderr.ToString(); }
    }

    /// <param name="hangUp">
    /// disposing a response that was not read to the end closes the connection at once. By default HttpClient first
    /// drains what is left (up to 1 MiB within 2 s) to reuse the connection, so a client "hanging up" on a fast
    /// enough stream in fact reads it to the end and the server sees a completed request, not a cancelled one.
    /// </param>
    public HttpClient Client(string? apiKey = null, bool hangUp = false)
    {
        var handler = new SocketsHttpHandler { MaxResponseDrainSize = hangUp ? 0 : 1024 * 1024 };
        var http = new HttpClient(handler) { BaseAddress = BaseUri, Timeout = TimeSpan.FromMinutes(2) };
        if (apiKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
        return http;
    }

    public async Task<JsonElement> HealthAsync()
    {
        using var http = Client();
        return await http.GetFromJsonAsync<JsonElement>("health");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(true);
                _process.WaitForExit(10000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }
}
