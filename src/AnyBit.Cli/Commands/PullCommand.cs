using System.Collections.Concurrent;
using System.CommandLine;
using AnyBit.Models;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary>
/// <c>anybit pull ORG/NAME[@REVISION]</c>: a model from the Hugging Face Hub into the local cache, where
/// <c>--model ORG/NAME</c> then finds it (see <see cref="HubDownloader"/>).
/// </summary>
internal static class PullCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hub model id ORG/NAME, or ORG/NAME@REVISION (a branch, tag or commit; main by default)" };
        var include = new Option<string[]>("--include") { Description = "Only files matching this pattern, e.g. '*.safetensors' or 'config.json' (repeatable; default: every file)", AllowMultipleArgumentsPerToken = false };
        var workers = new Option<int>("--max-workers") { Description = "Files downloaded at once", DefaultValueFactory = _ => 8 };
        var json = CommonOptions.Json();
        var cmd = new Command("pull", "Download a model from the Hugging Face Hub into the local cache (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE)")
        {
            model, include, workers, json,
        };
        cmd.SetAction(async (parse, cancellation) =>
        {
            var options = new HubPullOptions
            {
                Endpoint = HubEnvironment.Endpoint(),
                Token = HubEnvironment.Token(),
                Cache = HubCache.Root(),
                Include = parse.GetValue(include) ?? [],
                MaxWorkers = parse.GetValue(workers),
            };
            string id = parse.GetValue(model)!;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            HubPullResult result;
            bool interactive = !Console.IsErrorRedirected && !parse.GetValue(json) && AnsiConsole.Profile.Capabilities.Interactive;
            if (interactive)
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                result = await console.Progress()
                    .AutoClear(true)
                    .HideCompleted(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(p => HubDownloader.PullAsync(id, options, new Bars(p), cancellation));
            }
            else result = await HubDownloader.PullAsync(id, options, parse.GetValue(json) ? null : new Lines(), cancellation);
            long fetched = result.Files.Where(f => f.Downloaded).Sum(f => f.Bytes);
            if (parse.GetValue(json))
                CommonOptions.WriteJson(new { result.Id, result.Revision, result.Commit, result.Snapshot, Files = result.Files, DownloadedBytes = fetched, Seconds = clock.Elapsed.TotalSeconds });
            else
                Console.Out.WriteLine($"pulled {result.Id}@{result.Revision} (commit {result.Commit}): {result.Files.Count} files, {result.Files.Count(f => f.Downloaded)} downloaded ({fetched:N0} bytes) in {clock.Elapsed.TotalSeconds:F1} s into {result.Snapshot}");
            return 0;
        });
        return cmd;
    }

    /// <summary>A bar per file in flight (finished ones disappear); Spectre's tasks are safe to update from the workers.</summary>
    private sealed class Bars(ProgressContext context) : IHubPullProgress
    {
        private readonly ConcurrentDictionary<string, ProgressTask> _tasks = new();

        public void Started(string path, long size, long have)
        {
            var task = context.AddTask(Markup.Escape(path), maxValue: Math.Max(size, 1));
            task.Value = have;
            _tasks[path] = task;
        }

        public void Advanced(string path, long bytes)
        {
            if (_tasks.TryGetValue(path, out var task)) task.Increment(bytes);
        }

        public void Finished(string path, long size, bool downloaded)
        {
            if (_tasks.TryRemove(path, out var task)) task.StopTask();
        }
    }

    /// <summary>A line on stderr per file when stderr is no terminal.</summary>
    private sealed class Lines : IHubPullProgress
    {
        public void Started(string path, long size, long have)
        {
            if (have > 0) Console.Error.WriteLine($"[{path}: resuming at {have:N0} of {size:N0} bytes]");
        }

        public void Advanced(string path, long bytes) { }

        public void Finished(string path, long size, bool downloaded) =>
            Console.Error.WriteLine($"[{path}: {size:N0} bytes{(downloaded ? "" : ", already cached")}]");
    }
}
