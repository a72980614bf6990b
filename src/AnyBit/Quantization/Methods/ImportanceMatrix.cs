using System.Runtime.InteropServices;
using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// The importance matrix file <c>anybit imatrix</c> writes and <c>quantize --imatrix</c> reads: a GGUF with, per
/// linear weight, a float32 tensor <c>NAME.in_sum2</c> (Σ x² per input channel over the calibration tokens) and
/// <c>NAME.counts</c> (the token count), and the keys <c>imatrix.datasets</c>, <c>imatrix.chunk_count</c> and
/// <c>imatrix.chunk_size</c>: the layout of llama.cpp's GGUF imatrix files, whose reader refuses a file without those
/// three keys. The linear weights are the role table's layer linears; the output head is not recorded. A name ending in
/// <c>.dat</c> is written, and any file not starting with the GGUF magic is read, in llama.cpp's older
/// <c>imatrix.dat</c> layout (<see cref="LegacyImatrix"/>), so files pass both ways between AnyBit and llama.cpp
/// builds of either age. Both layouts read back as llama-quantize computes them: mean x² per channel, the float
/// quotient Σx²/count.
/// </summary>
public static class ImportanceMatrix
{
    /// <summary>
    /// Writes the statistics of the linears <paramref name="c"/>'s layers have; <paramref name="chunks"/> and
    /// <paramref name="chunkSize"/> are the calibration windows and their length in tokens (llama-imatrix's chunks).
    /// An expert tensor's entry holds one slice per expert (llama-imatrix's [experts × columns] layout), each the mean
    /// over that expert's routed tokens, scaled to the layer's token count so that one count divides them all; an
    /// expert calibration never routed to reads as all 1, as llama.cpp reads an unseen slice.
    /// </summary>
    public static void Write(ActivationStatistics stats, ModelConfig c, string output, string dataset, int chunks = 1, int chunkSize = 0,
        CancellationToken cancellation = default)
    {
        var entries = new List<(string, float[], long)>();
        bool sparse = c.Experts is not null;
        for (int l = 0; l < c.NumLayers; l++)
            foreach (var role in c.Architecture.Roles)
            {
                if (role.Kind != TensorKind.Linear || !role.PerLayer || (sparse ? TensorRoles.DenseFeedForward.Contains(role) : role.IsExperts)) continue;
                if (!role.IsExperts)
                {
                    var s = stats.For(l, role.Input!.Value);
                    entries.Add((role.GgufName(l), s.SumSquares.Select(v => (float)v).ToArray(), s.Tokens));
                    continue;
                }
                // Every expert slice is scaled to the layer's tokens (the router's input count).
                var tokens = stats.For(l, LinearInput.FeedForward).Tokens;
                int experts = c.Experts!.Count, width = (int)role.Shape(c)[^1];
                var sums = new float[(long)experts * width];
                for (int e = 0; e < experts; e++)
                {
                    var x = stats.ForExpert(l, role.Input!.Value, e);
                    for (int i = 0; i < width; i++)
                        sums[(long)e * width + i] = x is null ? tokens : (float)(x.SumSquares[i] / x.Tokens * tokens);
                }
                entries.Add((role.GgufName(l), sums, tokens));
            }
        Write(entries, output, dataset, chunks, chunkSize, cancellation);
    }

    /// <summary>Writes (weight name, Σx² per channel, token count) entries in the layout <paramref name="output"/>'s extension names.</summary>
    internal static void Write(IReadOnlyList<(string Name, float[] SumSquares, long Tokens)> entries, string output, string dataset,
        int chunks, int chunkSize, CancellationToken cancellation = default)
    {
        if (output.EndsWith(".dat", StringComparison.OrdinalIgnoreCase))
        {
            LegacyImatrix.Write(output, entries, dataset, chunks);
            return;
        }
        var w = new GgufWriter();
        w.Add("general.type", "imatrix");
        w.Add("imatrix.datasets", new[] { dataset });
        w.Add("imatrix.chunk_count", (uint)Math.Max(0, chunks));
        w.Add("imatrix.chunk_size", (uint)Math.Max(0, chunkSize));
        foreach (var (name, sums, tokens) in entries)
        {
            w.AddTensor(name + ".in_sum2", [sums.Length], (uint)TensorType.F32, sums.Length * 4L, dst => MemoryMarshal.AsBytes(sums.AsSpan()).CopyTo(dst));
            float[] count = [tokens];
            w.AddTensor(name + ".counts", [1], (uint)TensorType.F32, 4, dst => MemoryMarshal.AsBytes(count.AsSpan()).CopyTo(dst));
        }
        w.Write(output, null, cancellation);
    }

    /// <summary>
    /// Mean x² per input channel, by weight name, as llama-quantize's load_imatrix computes it: in a GGUF file each
    /// in_sum2 divided by its counts (one count per expert slice; a slice never seen is all 1), in an imatrix.dat each
    /// value divided by ncall. A non-finite value is refused, as llama-quantize refuses it.
    /// </summary>
    public static Dictionary<string, float[]> Read(string path)
    {
        var result = GgufFile.HasMagic(path) ? ReadGguf(path) : LegacyImatrix.Read(path);
        foreach (var (name, values) in result)
            foreach (float v in values)
                if (!float.IsFinite(v)) throw new InvalidModelFileException(path, $"importance matrix entry '{name}' has a non-finite value ({v})");
        return result;
    }

    private static Dictionary<string, float[]> ReadGguf(string path)
    {
        using var gguf = GgufFile.Open(path);
        var result = new Dictionary<string, float[]>();
        foreach (var t in gguf.Tensors)
        {
            bool isSums = t.Name.EndsWith(".in_sum2", StringComparison.Ordinal);
            string name = isSums ? t.Name[..^".in_sum2".Length] : t.Name.EndsWith(".counts", StringComparison.Ordinal) ? t.Name[..^".counts".Length] : "";
            if (name.Length == 0) continue;
            var sumsTensor = gguf.Find(name + ".in_sum2");
            var countsTensor = gguf.Find(name + ".counts");
            if (sumsTensor is null || countsTensor is null)
                throw new InvalidModelFileException(path, $"importance matrix entry '{name}' has {(isSums ? "in_sum2 but no counts" : "counts but no in_sum2")}");
            if (!isSums) continue;
            var sums = sumsTensor.ToFloat32();
            var counts = countsTensor.ToFloat32();
            if (counts.Length < 1 || sums.Length % counts.Length != 0)
                throw new InvalidModelFileException(path, $"importance matrix entry '{name}': {sums.Length} sums do not split into {counts.Length} counts");
            int slice = sums.Length / counts.Length;
            var values = new float[sums.Length];
            for (int j = 0; j < counts.Length; j++)
            {
                float count = MathF.Round(counts[j], MidpointRounding.AwayFromZero); // std::lround, then back to float
                for (int i = 0; i < slice; i++) values[j * slice + i] = count > 0 ? sums[j * slice + i] / count : 1;
            }
            result[name] = values;
        }
        if (result.Count == 0) throw new InvalidModelFileException(path, "not an importance matrix (no *.in_sum2 tensors)");
        return result;
    }
}
