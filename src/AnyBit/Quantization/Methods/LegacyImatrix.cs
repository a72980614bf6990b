using System.Buffers.Binary;
using System.Text;
using AnyBit.IO;

namespace AnyBit.Quantization.Methods;

/// <summary>
/// llama.cpp's older importance matrix layout (<c>imatrix.dat</c>, written by llama-imatrix before its GGUF files and
/// still the only one older llama-quantize builds read), little-endian: int32 entry count; per entry int32 name length,
/// the name, int32 ncall, int32 value count and the float32 values, each Σx²/count·ncall; then int32 chunk count and the
/// dataset name. A reader divides each value by ncall, so the mean x² per channel is what both sides use.
/// </summary>
internal static class LegacyImatrix
{
    public static Dictionary<string, float[]> Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int at = 0;
        int Int(string what)
        {
            if (at + 4 > bytes.Length) throw new InvalidModelFileException(path, $"importance matrix truncated reading {what} at byte {at}");
            int v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at));
            at += 4;
            return v;
        }
        int entries = Int("the entry count");
        if (entries < 1 || entries > bytes.Length / 12) throw new InvalidModelFileException(path, $"not an importance matrix (neither GGUF nor imatrix.dat: {entries} entries)");
        var result = new Dictionary<string, float[]>();
        for (int e = 0; e < entries; e++)
        {
            int length = Int("a name length");
            if (length < 1 || length > bytes.Length - at) throw new InvalidModelFileException(path, $"importance matrix entry {e + 1}: name length {length} runs past the end of the file");
            string name = Encoding.UTF8.GetString(bytes, at, length);
            at += length;
            int ncall = Int("ncall");
            int count = Int("a value count");
            if (count < 1 || count > (bytes.Length - at) / 4) throw new InvalidModelFileException(path, $"importance matrix entry '{name}': {count} values run past the end of the file");
            var values = new float[count];
            for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(at + 4 * i));
            at += 4 * count;
            if (ncall > 0)
                for (int i = 0; i < count; i++) values[i] /= ncall;
            result[name] = values;
        }
        return result;
    }

    /// <summary>
    /// Writes <paramref name="entries"/> (weight name, Σx² per channel, token count) with ncall 1, so each stored value is
    /// the float quotient Σx²/count that the GGUF layout's reader computes: the two files give identical importance.
    /// <paramref name="chunks"/> goes where llama-imatrix writes its chunk count, before the dataset name.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, float[] SumSquares, long Tokens)> entries, string dataset, int chunks = 1)
    {
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(entries.Count);
            foreach (var (name, sums, tokens) in entries)
            {
                byte[] n = Encoding.UTF8.GetBytes(name);
                w.Write(n.Length);
                w.Write(n);
                w.Write(1);
                w.Write(sums.Length);
                // A weight that saw no token reads as all 1 from the GGUF layout (llama.cpp's rule); the same here.
                float count = tokens;
                foreach (float s in sums) w.Write(count > 0 ? s / count : 1f);
            }
            w.Write(chunks);
            byte[] d = Encoding.UTF8.GetBytes(dataset);
            w.Write(d.Length);
            w.Write(d);
        });
    }
}
