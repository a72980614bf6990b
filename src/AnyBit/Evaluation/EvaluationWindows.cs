namespace AnyBit.Evaluation;

/// <summary>One evaluated window: the ids fed to the model and which predictions inside it are scored.</summary>
/// <param name="Start">index of the window's first id in the token stream</param>
/// <param name="Length">ids fed to the model</param>
/// <param name="FirstScored">position whose prediction (of the next id) is the first scored</param>
/// <param name="ReplaceFirstWithBos">feed BOS instead of the window's first id (llama-perplexity with add_bos)</param>
public readonly record struct EvaluationWindow(int Start, int Length, int FirstScored, bool ReplaceFirstWithBos);

/// <summary>How a token stream is cut into windows for perplexity and KL divergence.</summary>
public enum WindowMethod
{
    /// <summary>
    /// The Gutenberg models' method: windows of ctx+1 ids every ctx, all ctx predictions scored, a partial last
    /// window dropped (the token stream ends with EOS).
    /// </summary>
    Full,

    /// <summary>
    /// llama-perplexity's: chunks of ctx ids (no overlap, no EOS appended, BOS replacing each chunk's first id when
    /// the vocabulary adds BOS), only the second half of each chunk scored — positions ctx/2 … ctx−2 predicting the
    /// ids after them — so every scored prediction has at least ctx/2 tokens of context.
    /// </summary>
    LlamaCpp,
}

public static class EvaluationWindows
{
    public static List<EvaluationWindow> Cut(int tokenCount, int ctx, WindowMethod method, bool addBos)
    {
        var windows = new List<EvaluationWindow>();
        if (method == WindowMethod.Full)
        {
            for (int start = 0; start + ctx + 1 <= tokenCount; start += ctx)
                windows.Add(new EvaluationWindow(start, ctx + 1, 0, false));
        }
        else
        {
            for (int start = 0; start + ctx <= tokenCount; start += ctx)
                windows.Add(new EvaluationWindow(start, ctx, ctx / 2, addBos));
        }
        return windows;
    }

    /// <summary>Predictions scored in one window: positions FirstScored … Length−2.</summary>
    public static int Scored(EvaluationWindow w) => w.Length - 1 - w.FirstScored;
}
