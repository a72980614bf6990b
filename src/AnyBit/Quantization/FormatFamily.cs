using System.Globalization;

namespace AnyBit.Quantization;

/// <summary>
/// A parametric format family (int{k}, NF4/FP4, MX, minifloats, ...): how its specs read, and a few representative
/// specs. Each family declares one of these beside its format class; <see cref="FormatRegistry"/> finds them all by
/// reflection, so adding a family is adding its file. Families must not claim each other's heads.
/// </summary>
public abstract class FormatFamily
{
    /// <summary>Where the family's forms appear in the valid-forms text (lower first).</summary>
    public abstract int Order { get; }

    /// <summary>The family's forms for the valid-forms text: "nf4[:g{N}] and fp4[:g{N}] (default g64)".</summary>
    public abstract string Forms { get; }

    /// <summary>Representative specs: every compiled kernel shape and layout variant of the family, which the tests
    /// run through the reference, kernel and round-trip tests.</summary>
    public abstract IReadOnlyList<string> Examples { get; }

    /// <summary>The format for <paramref name="head"/> (the spec before its first ':'), taking the options it reads;
    /// null when the head is not this family's. Throws <see cref="AnyBitException"/> for a bad option.</summary>
    public abstract TensorFormat? TryParse(string head, FormatOptions options);
}

/// <summary>The ':'-separated options of a spec after its head; a family takes those it reads and the rest is an error.</summary>
public sealed class FormatOptions(IEnumerable<string> options)
{
    private readonly List<string> _options = options.ToList();

    /// <summary>Removes <paramref name="word"/>; true when it was given.</summary>
    public bool Take(string word) => _options.Remove(word);

    /// <summary>Removes a group size option (g{N} or b{N}) and returns N; null when none was given.</summary>
    public int? TakeGroup()
    {
        var g = _options.FirstOrDefault(o => o.Length > 1 && o[0] is 'g' or 'b' && o[1..].All(char.IsAsciiDigit));
        if (g is null) return null;
        _options.Remove(g);
        int n = int.Parse(g[1..], CultureInfo.InvariantCulture);
        if (n < 1 || n > 1 << 20) throw new AnyBitException($"group size {n} is out of range");
        return n;
    }

    /// <summary>Throws for the first option nobody took.</summary>
    public void NoLeftovers()
    {
        if (_options.Count > 0) throw new AnyBitException($"unknown option ':{_options[0]}'");
    }
}
