namespace AnyBit.Tests;

/// <summary>
/// A test that runs only where ANYBIT_SLOW_TESTS=1 (README: the whole-book anchors), reported as skipped otherwise:
/// the as-trained perplexities over all of Sherlock are minutes each, a large share of CI's budget, and the windows,
/// the model paths and llama-perplexity's numbers they rest on are each tested on shorter inputs by the default run.
/// </summary>
public sealed class SlowFactAttribute : FactAttribute
{
    public const string Variable = "ANYBIT_SLOW_TESTS";

    public SlowFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1") Skip = $"slow: set {Variable}=1 to run";
    }
}
