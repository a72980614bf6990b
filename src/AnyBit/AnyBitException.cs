namespace AnyBit;

/// <summary>
/// A problem with user input (a file, a format string, a prompt) that AnyBit reports as one line and a non-zero
/// exit code. Anything else escaping the engine is a bug.
/// </summary>
public class AnyBitException : Exception
{
    /// <summary>Creates an error whose message is shown to the user as is.</summary>
    public AnyBitException(string message) : base(message) { }

    /// <summary>Creates an error that keeps the low-level cause for debugging.</summary>
    public AnyBitException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model or data file that is malformed, truncated, hostile or of a kind AnyBit does not read.</summary>
public sealed class InvalidModelFileException : AnyBitException
{
    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>Creates the error; the message reads "FILE: PROBLEM".</summary>
    public InvalidModelFileException(string filePath, string problem)
        : base($"{filePath}: {OneLine(problem)}") => FilePath = filePath;

    /// <summary>
    /// Errors are printed as one line: control characters (a JSON parser's message may quote a multi-line
    /// fragment of a hostile file) become spaces and very long texts are cut.
    /// </summary>
    internal static string OneLine(string text)
    {
        var chars = text.Select(c => char.IsControl(c) ? ' ' : c).ToArray();
        string s = new string(chars);
        return s.Length > 400 ? s[..400] + "…" : s;
    }
}
