using AnyBit.IO;
using AnyBit.Models;
using AnyBit.Quantization.Calibration;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// The importance matrix file <c>anybit imatrix</c> writes and <c>quantize --imatrix</c> reads: a GGUF with, per
/// linear weight, a float32 tensor <c>NAME.in_sum2</c> (Σ x² per input channel over the calibration tokens) and
/// <c>NAME.counts</c> (the token count), the layout of llama.cpp's GGUF imatrix files. The linear weights are the
/// role table's layer linears; the output head is not recorded. A name ending in <c>.dat</c> is written, and any file
/// not starting with the GGUF magic is read, in llama.cpp's older <c>imatrix.dat</c> layout (<see cref="LegacyImatrix"/>),
/// so files pass both ways between AnyBit and llama.cpp builds of either age.
/// </summary>
public static class ImportanceMatrix
{
    public static void Write(ActivationStatistics stats, int layers, string output, string dataset, CancellationToken cancellation = default)
    {
        if (output.EndsWith(".dat", StringComparison.OrdinalIgnoreCase))
        {
            var entries = new List<(string, float[], long)>();
            for (int l = 0; l < layers; l++)
                foreach (var role in TensorRoles.LayerLinears)
                {
                    var s = stats.For(l, role.Input!.Value);
                    entries.Add((role.GgufName(l), s.SumSquares.Select(v => (float)v).ToArray(), s.Tokens));
                }
            LegacyImatrix.Write(output, entries, dataset);
            return;
        }
        var w = new GgufWriter();
        w.Add("general.type", "imatrix");
        w.Add("imatrix.datasets", new[] { dataset });
        for (int l = 0; l < layers; l++)
            foreach (var role in TensorRoles.LayerLinears)
            {
                string name = role.GgufName(l);
                var s = stats.For(l, role.Input!.Value);
                var sums = s.SumSquares.Select(v => (float)v).ToArray();
                w.AddTensor(name + ".in_sum2", [sums.Length], (uint)TensorType.F32, sums.Length * 4L, dst => System.Runtime.InteropServices.MemoryMarshal.AsBytes(sums.AsSpan()).CopyTo(dst));
                float[] count = [s.Tokens];
                w.AddTensor(name + ".counts", [1], (uint)TensorType.F32, 4, dst => System.Runtime.InteropServices.MemoryMarshal.AsBytes(count.AsSpan()).CopyTo(dst));
            }
        w.Write(output, null, cancellation);
    }

    /// <summary>Mean x² per input channel, by weight name.</summary>
    public static Dictionary<string, float[]> Read(string path)
    {
        if (!GgufFile.HasMagic(path)) return LegacyImatrix.Read(path);
        using var gguf = GgufFile.Open(path);
        var result = new Dictionary<string, float[]>();
        foreach (var t in gguf.Tensors)
        {
            if (!t.Name.EndsWith(".in_sum2", StringComparison.Ordinal)) continue;
            string name = t.Name[..^".in_sum2".Length];
            var counts = gguf.Find(name + ".counts")?.ToFloat32();
            float n = counts is { Length: > 0 } && counts[0] > 0 ? counts[0] : 1;
            result[name] = t.ToFloat32().Select(v => v / n).ToArray();
        }
        if (result.Count == 0) throw new InvalidModelFileException(path, "not an importance matrix (no *.in_sum2 tensors)");
        return result;
    }
}
