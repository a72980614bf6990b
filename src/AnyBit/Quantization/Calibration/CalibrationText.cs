using AnyBit.Text;

namespace AnyBit.Quantization.Calibration;

/// <summary>
/// Calibration windows from a plain-text file: the text is tokenized once and <c>count</c> windows of
/// <c>length</c> tokens are taken at seeded random offsets (without overlap when the text is long enough), each
/// starting with BOS when the tokenizer uses one.
/// </summary>
public static class CalibrationText
{
    public static int[][] Sample(ITokenizer tokenizer, string file, int count, int length, ulong seed)
    {
        if (!File.Exists(file)) throw new InvalidModelFileException(file, "calibration file not found");
        if (count < 1 || length < 2) throw new AnyBitException($"calibration needs at least one window of two tokens (got {count} × {length})");
        string text = File.ReadAllText(file);
        int[] ids = tokenizer.Encode(text, addSpecial: false);
        int body = length - (tokenizer.BosId is null ? 0 : 1);
        if (ids.Length < body) throw new InvalidModelFileException(file, $"the calibration text has {ids.Length} tokens, fewer than one window of {length}");
        var rng = new Random(unchecked((int)seed ^ (int)(seed >> 32)));
        int slots = ids.Length / body;
        var starts = slots >= count
            ? Enumerable.Range(0, slots).OrderBy(_ => rng.Next()).Take(count).Select(s => s * body).ToArray()
            : Enumerable.Range(0, count).Select(_ => rng.Next(ids.Length - body + 1)).ToArray();
        return starts.Select(s =>
        {
            var window = new List<int>(length);
            if (tokenizer.BosId is int bos) window.Add(bos);
            window.AddRange(ids.AsSpan(s, body).ToArray());
            return window.ToArray();
        }).ToArray();
    }
}
