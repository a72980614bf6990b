namespace AnyBit.Models;

/// <summary>How the next token is chosen. Temperature 0 means greedy (argmax).</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0f;
    /// <summary>Keep only the K most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches P (1 = off).</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens whose probability is below MinP × the top token's (0 = off).</summary>
    public float MinP { get; init; }
    /// <summary>CTRL-style penalty on tokens seen in the last <see cref="RepetitionWindow"/> tokens (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public int RepetitionWindow { get; init; } = 64;
    public ulong? Seed { get; init; }

    /// <summary>Throws when a value is out of range.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new AnyBitException($"temperature {Temperature} must be ≥ 0");
        if (TopK < 0) throw new AnyBitException($"top-k {TopK} must be ≥ 0");
        if (!(TopP > 0 && TopP <= 1)) throw new AnyBitException($"top-p {TopP} must be in (0, 1]");
        if (!(MinP >= 0 && MinP <= 1)) throw new AnyBitException($"min-p {MinP} must be in [0, 1]");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) throw new AnyBitException($"repetition penalty {RepetitionPenalty} must be > 0");
        if (RepetitionWindow < 0) throw new AnyBitException($"repetition window {RepetitionWindow} must be ≥ 0");
    }
}
