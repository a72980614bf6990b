using System.Diagnostics;

namespace AnyBit.Tests;

/// <summary>Runs the real <c>anybit</c> executable (AnyBit.Cli.dll, built beside the tests) as a child process.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static string CliDll => Path.Combine(AppContext.BaseDirectory, "AnyBit.Cli.dll");

    public static Result Run(params string[] args) => RunWithInput("", args);

    /// <summary>Runs with <paramref name="stdin"/> written to the child's standard input.</summary>
    public static Result RunWithInput(string stdin, params string[] args) => RunWithEnvironment(stdin, new Dictionary<string, string?>(), args);

    /// <summary>Runs with <paramref name="environment"/> set in the child's environment (a null value unsets the variable).</summary>
    public static Result RunWithEnvironment(string stdin, IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("ANYBIT_DEBUG");
        foreach (var (name, value) in environment)
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(true);
            throw new TimeoutException("anybit " + string.Join(' ', args));
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
