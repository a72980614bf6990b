using System.CommandLine;
using AnyBit.Cli.Commands;

namespace AnyBit.Cli;

/// <summary>
/// The <c>anybit</c> command. Every failure the user can cause ends as one line on stderr and a non-zero exit code:
/// 1 for bad input (a file, a format, a prompt), 2 for a command line that does not parse, 130 for Ctrl-C, and 70 for
/// anything else (a bug: the line says so, still without a stack trace unless ANYBIT_DEBUG is set).
/// </summary>
public static class Program
{
    public const int ExitBadInput = 1, ExitUsage = 2, ExitInternal = 70, ExitCancelled = 130;

    public static int Main(string[] args)
    {
        var root = new RootCommand("AnyBit: load, quantize, measure and run LLMs at any bit width.")
        {
            RunCommand.Create(),
            TokenizeCommand.Create(),
            PerplexityCommand.Create(),
            InspectCommand.Create(),
            QuantizeCommand.Create(),
            SynthCommand.Create(),
            BenchCommand.Create(),
            ServeCommand.Create(),
            SweepCommand.Create(),
            ImatrixCommand.Create(),
            PullCommand.Create(),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("Run 'anybit --help' for usage.");
            return ExitUsage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return Report(e);
        }
    }

    /// <summary>Prints one line for an exception and returns the exit code it maps to.</summary>
    public static int Report(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];
        if (e.InnerException is AnyBitException inner && e is not AnyBitException) e = inner;
        switch (e)
        {
            case OperationCanceledException:
                Console.Error.WriteLine("cancelled");
                return ExitCancelled;
            case AnyBitException:
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitBadInput;
            case IOException or UnauthorizedAccessException:
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitBadInput;
            case OutOfMemoryException:
                Console.Error.WriteLine("error: out of memory (the model or context is too large for this machine; try a smaller --ctx)");
                return ExitBadInput;
            default:
                Console.Error.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
                if (Environment.GetEnvironmentVariable("ANYBIT_DEBUG") is not null) Console.Error.WriteLine(e);
                return ExitInternal;
        }
    }
}
