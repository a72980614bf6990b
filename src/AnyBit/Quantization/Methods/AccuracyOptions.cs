namespace AnyBit.Quantization.Methods;

/// <summary>How a model is quantized beyond plain round-to-nearest.</summary>
public sealed record AccuracyOptions
{
    /// <summary>GPTQ error compensation (needs calibration).</summary>
    public bool Gptq { get; init; }

    /// <summary>AWQ activation-aware scaling (needs calibration).</summary>
    public bool Awq { get; init; }

    /// <summary>Randomized Hadamard rotation of the residual stream, folded into the weights.</summary>
    public bool Rotate { get; init; }

    /// <summary>Plain text to calibrate on.</summary>
    public string? CalibrationFile { get; init; }
    public int CalibrationWindows { get; init; } = 64;
    public int CalibrationLength { get; init; } = 256;
    public ulong Seed { get; init; } = 1;

    /// <summary>An importance matrix from <c>anybit imatrix</c>: RTN then searches clipping weighted by it.</summary>
    public string? ImatrixFile { get; init; }

    public GptqOptions GptqOptions { get; init; } = new();

    /// <summary>Mixed precision: the average bits per weight to fit (all tensors counted).</summary>
    public double? TargetBitsPerWeight { get; init; }

    /// <summary>Mixed precision: the file size to fit, in bytes.</summary>
    public long? TargetBytes { get; init; }

    /// <summary>Formats the mixed-precision planner may choose from.</summary>
    public IReadOnlyList<string> Candidates { get; init; } = MixedPrecisionPlanner.DefaultCandidates;

    public bool NeedsCalibration => Gptq || Awq || TargetBitsPerWeight is not null || TargetBytes is not null;

    public bool IsPlain => !Gptq && !Awq && !Rotate && ImatrixFile is null && TargetBitsPerWeight is null && TargetBytes is null;

    /// <summary>
    /// Options for a method string: "rtn", or a '+'-joined combination of gptq, awq and rotate (e.g. "awq+gptq",
    /// "gptq+rotate"). <paramref name="option"/> names the command-line option in the error.
    /// </summary>
    public static AccuracyOptions ForMethod(string method, string option)
    {
        var parts = method.Trim().ToLowerInvariant().Split('+', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts.Any(p => p is not ("rtn" or "gptq" or "awq" or "rotate")))
            throw new AnyBitException($"{option} '{method}' is not rtn or a combination of gptq, awq and rotate (e.g. awq+gptq)");
        return new AccuracyOptions { Gptq = parts.Contains("gptq"), Awq = parts.Contains("awq"), Rotate = parts.Contains("rotate") };
    }

    /// <summary>A short name of the method for metadata and reports, e.g. "gptq+rotate".</summary>
    public string MethodName => string.Join("+", new[] { Awq ? "awq" : null, Gptq ? "gptq" : null, Rotate ? "rotate" : null, ImatrixFile is not null ? "imatrix" : null }
        .Where(s => s is not null).DefaultIfEmpty("rtn"));
}
