namespace AnyBit.IO.Checkpoints;

/// <summary>
/// Activation-order group indices (GPTQ's <c>g_idx</c>, compressed-tensors' <c>weight_g_idx</c>): each input column's
/// group. Columns sorted by group make every group contiguous again; the order is null when they already are.
/// </summary>
internal static class GroupOrder
{
    /// <summary>The stored column order (stored column k holds input column order[k]), or null for input order;
    /// a one-line error for an index out of range or a group of the wrong size.</summary>
    public static int[]? Of(StoredTensor? gIdx, ModuleTensors m, int columns, int group, int groups)
    {
        if (gIdx is null) return null;
        m.Expect(gIdx, [columns], TensorType.I32, TensorType.U32, TensorType.I64);
        var index = Array.ConvertAll(ModuleTensors.Integers(gIdx), x => x is < int.MinValue or > int.MaxValue ? -1 : (int)x);
        var counts = new int[groups];
        for (int i = 0; i < columns; i++)
        {
            if ((uint)index[i] >= (uint)groups) throw m.Bad(gIdx, $"value {index[i]} at column {i} is out of range [0, {groups})");
            counts[index[i]]++;
        }
        for (int k = 0; k < groups; k++)
            if (counts[k] != group) throw m.Bad(gIdx, $"group {k} has {counts[k]} columns, not the group size {group}");
        bool identity = true;
        for (int i = 0; i < columns && identity; i++) identity = index[i] == i / group;
        return identity ? null : Enumerable.Range(0, columns).OrderBy(i => index[i]).ThenBy(i => i).ToArray();
    }
}
