using AnyBit.IO;

namespace AnyBit.Models;

/// <summary>
/// gpt-oss's experts as transformers holds them (<c>GptOssExperts</c> in modeling_gpt_oss.py), turned into the 3-D
/// tensors every other part of AnyBit reads. <c>gate_up_proj</c> holds gate and up of every expert with their
/// outputs interleaved (<c>gate_up[..., ::2]</c> is gate, <c>[..., 1::2]</c> up), <c>gate_up_proj_bias</c> likewise;
/// float parameters are input-major (<c>gate_up_proj</c> [E, D, 2F], <c>down_proj</c> [E, F, D], multiplied as
/// x @ W), while the published MXFP4 checkpoint's blocks are output-major ([E, 2F, D] and [E, D, F] once
/// <see cref="IO.Checkpoints.Mxfp4Scheme"/> has read them). The results are copies in memory, in the stored type:
/// MXFP4 rows stay packed (whole rows are moved, never decoded), float elements are transposed as they are.
/// </summary>
internal static class InterleavedExperts
{
    /// <summary>
    /// Replaces each layer's <c>ffn_gate_up_exps</c> (and its bias) by <c>ffn_gate_exps</c> and <c>ffn_up_exps</c>, and
    /// transposes a float <c>ffn_down_exps</c> to [E, D, F]; the memory is added to <paramref name="owned"/>.
    /// </summary>
    public static void Split(Dictionary<string, StoredTensor> byName, List<IDisposable> owned, ModelConfig c)
    {
        if (c.Experts is not { } ex) return;
        long e = ex.Count, f = ex.FfnSize, d = c.HiddenSize;
        for (int l = 0; l < c.NumLayers; l++)
        {
            if (byName.Remove(TensorRoles.FfnGateUpExps.GgufName(l), out var gu))
            {
                bool packed = RowMajor(gu);
                Expect(gu, packed ? [e, 2 * f, d] : [e, d, 2 * f]);
                for (int part = 0; part < 2; part++)
                {
                    string name = TensorRoles.FfnGateUpExps.Parts![part].GgufName(l);
                    byName[name] = packed
                        ? Rows(gu, name, e, f, d, owned, (x, j) => (x * 2 * f + 2 * j + part))
                        : Transposed(gu, name, e, d, 2 * f, owned, part);
                }
            }
            if (byName.Remove(TensorRoles.FfnGateUpExpsBias.GgufName(l), out var gub))
            {
                Expect(gub, [e, 2 * f]);
                for (int part = 0; part < 2; part++)
                {
                    string name = TensorRoles.FfnGateUpExpsBias.Parts![part].GgufName(l);
                    byName[name] = Transposed(gub, name, 1, e, 2 * f, owned, part, keepRows: true);
                }
            }
            string down = TensorRoles.FfnDownExps.GgufName(l);
            if (byName.TryGetValue(down, out var dt) && !RowMajor(dt))
            {
                Expect(dt, [e, f, d]);
                byName[down] = Transposed(dt, down, e, f, d, owned, part: -1);
            }
        }
    }

    /// <summary>Quantized blocks (MXFP4) are stored output-major; float parameters input-major.</summary>
    private static bool RowMajor(StoredTensor t) => t.Format is not null || t.Type is not (TensorType.F32 or TensorType.F16 or TensorType.BF16);

    private static void Expect(StoredTensor t, long[] shape)
    {
        if (!t.Shape.SequenceEqual(shape))
            throw new InvalidModelFileException(t.File.Path, $"tensor '{t.Name}' is [{string.Join(", ", t.Shape)}], the config implies [{string.Join(", ", shape)}]");
    }

    /// <summary>[e, f, d] of whole stored rows: row j of expert x is the source's row <paramref name="source"/>(x, j).</summary>
    private static StoredTensor Rows(StoredTensor t, string name, long e, long f, long d, List<IDisposable> owned, Func<long, long, long> source)
    {
        long rowBytes = t.ByteLength / t.Rows;
        var memory = MappedFile.InMemory(t.File.Path, e * f * rowBytes);
        owned.Add(memory);
        var all = t.Bytes;
        for (long x = 0; x < e; x++)
            for (long j = 0; j < f; j++)
                all.Slice(checked((int)(source(x, j) * rowBytes)), (int)rowBytes).CopyTo(memory.Writable((x * f + j) * rowBytes, (int)rowBytes));
        return new StoredTensor($"{t.Name} ({name})", [e, f, d], t.Type, memory, 0, e * f * rowBytes, t.Format);
    }

    /// <summary>
    /// Each of the <paramref name="e"/> [rows, cols] matrices transposed to [cols', rows], where cols' are the columns
    /// of parity <paramref name="part"/> (0 or 1; −1 for all). With <paramref name="keepRows"/>, the chosen columns
    /// of each row are kept in place instead (a bias [rows, 2F] → [rows, F]).
    /// </summary>
    private static StoredTensor Transposed(StoredTensor t, string name, long e, long rows, long cols, List<IDisposable> owned, int part, bool keepRows = false)
    {
        int size = checked((int)(t.ByteLength / t.ElementCount));
        long kept = part < 0 ? cols : cols / 2, stride = part < 0 ? 1 : 2, first = part < 0 ? 0 : part;
        long length = e * rows * kept * size;
        var memory = MappedFile.InMemory(t.File.Path, length);
        owned.Add(memory);
        var src = t.Bytes;
        var dst = memory.Writable(0, checked((int)length));
        for (long x = 0; x < e; x++)
            for (long r = 0; r < rows; r++)
                for (long k = 0; k < kept; k++)
                {
                    long from = ((x * rows + r) * cols + first + k * stride) * size;
                    long to = (keepRows ? (x * rows + r) * kept + k : (x * kept + k) * rows + r) * size;
                    src.Slice((int)from, size).CopyTo(dst.Slice((int)to, size));
                }
        long[] shape = keepRows ? (e == 1 ? [rows, kept] : [e, rows, kept]) : [e, kept, rows];
        return new StoredTensor($"{t.Name} ({name})", shape, t.Type, memory, 0, length, t.Format);
    }
}
