using System.CommandLine;
using AnyBit.Evaluation;
using AnyBit.Models;
using Spectre.Console;

namespace AnyBit.Cli.Commands;

/// <summary><c>anybit perplexity</c>: perplexity of a text file under the model, with full non-overlapping windows.</summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var tokenizer = CommonOptions.Tokenizer();
        var text = new Option<string>("--text", "-f") { Description = "Plain-text file to evaluate", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length (tokens predicted per window)", DefaultValueFactory = _ => 512 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Use only the first N tokens of the text" };
        var json = CommonOptions.Json();
        var floatRef = CommonOptions.FloatReference();
        var cmd = new Command("perplexity", "Measure perplexity on a text file") { model, tokenizer, text, ctx, maxTokens, json, floatRef };
        cmd.SetAction((parse, cancellation) =>
        {
            int c = parse.GetValue(ctx);
            if (c <= 0) throw new AnyBitException($"--ctx {c} must be positive");
            int? max = parse.GetValue(maxTokens);
            if (max is <= 0) throw new AnyBitException($"--max-tokens {max} must be positive");
            using var m = ModelLoader.Load(parse.GetValue(model)!, new LoadOptions { TokenizerPath = parse.GetValue(tokenizer), FloatReference = parse.GetValue(floatRef) });
            var tok = CommonOptions.RequireTokenizer(m);
            var ids = Perplexity.TokenizeForEvaluation(tok, parse.GetValue(text)!, max);
            PerplexityResult result;
            bool interactive = !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive;
            if (interactive)
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                result = null!;
                console.Progress().Start(p =>
                {
                    var task = p.AddTask("perplexity");
                    result = Perplexity.Evaluate(m, ids, c, new SyncProgress(x => { task.MaxValue = x.Total; task.Value = x.Done; }), cancellation);
                });
            }
            else result = Perplexity.Evaluate(m, ids, c, null, cancellation);

            if (parse.GetValue(json))
                CommonOptions.WriteJson(new { result.Perplexity, result.TokensScored, result.TokensPerSecond });
            else
                Console.Out.WriteLine($"perplexity {result.Perplexity:F4} over {result.TokensScored} tokens ({result.Windows} windows of {c}), {result.TokensPerSecond:F1} tokens/s");
            return Task.FromResult(0);
        });
        return cmd;
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and lag behind).</summary>
    private sealed class SyncProgress(Action<(int Done, int Total)> report) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => report(value);
    }
}
