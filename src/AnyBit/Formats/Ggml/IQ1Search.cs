namespace AnyBit.Formats.Ggml;

/// <summary>
/// The steps IQ1_S's and IQ1_M's quantizers share (ggml-quants.c): the sort of a block's weights and the search of an
/// off-grid group's neighbours on the IQ1 lattice (<see cref="IQ2Lattice"/>). ggml's iq1_find_best_neighbour (the
/// first version) is not called by any quantizer and has no counterpart here.
/// </summary>
internal static class IQ1Search
{
    /// <summary>C's FLT_MIN, the least normal float (2⁻¹²⁶): both searches start from a best score of −FLT_MIN.</summary>
    public const float FLT_MIN = 1.17549435E-38f;

    /// <summary>
    /// <paramref name="idx"/> = the positions of <paramref name="x"/> in ascending order of value, equal values in
    /// position order. ggml sorts (value, position) pairs with qsort and iq1_sort_helper, which compares the values
    /// only; glibc's qsort is a merge sort for arrays this small (it falls back to quicksort only when it cannot
    /// allocate), so equal values keep their order, as in this stable insertion sort.
    /// </summary>
    public static void SortAscending(ReadOnlySpan<float> x, Span<int> idx)
    {
        for (int j = 0; j < x.Length; ++j)
        {
            int m = j;
            while (m > 0 && x[idx[m - 1]] > x[j])
            {
                idx[m] = idx[m - 1];
                --m;
            }
            idx[m] = j;
        }
    }

    /// <summary>
    /// iq1_find_best_neighbour2: among <paramref name="neighbours"/> (count first), the grid point whose levels l,
    /// standing for <paramref name="xg"/>[l] (−1, 0, 1 shifted by ±delta), give the least Σ weight·(scale·q − xval)²
    /// (the first of equals); writes its levels to <paramref name="L"/> and returns its index.
    /// </summary>
    public static int FindBestNeighbour(IQ2Lattice lattice, ReadOnlySpan<ushort> neighbours, ReadOnlySpan<float> xval, ReadOnlySpan<float> weight,
        float scale, ReadOnlySpan<float> xg, Span<sbyte> L)
    {
        int numNeighbors = neighbours[0];
        float bestScore = float.MaxValue;
        int gridIndex = -1;
        for (int j = 1; j <= numNeighbors; ++j)
        {
            var pg = lattice.Point(neighbours[j]);
            float d2 = 0;
            for (int i = 0; i < 8; ++i)
            {
                float q = xg[(pg[i] - 1) / 2];
                float w = weight[i];
                float diff = scale * q - xval[i];
                d2 += w * diff * diff;
            }
            if (d2 < bestScore)
            {
                bestScore = d2;
                gridIndex = neighbours[j];
            }
        }
        // Only a NaN distance for every neighbour (NaN input) leaves none; ggml then scans the whole grid with an
        // out-of-bounds read and asserts. As IQ2Lattice.FindBestNeighbour: the first neighbour stands in.
        if (gridIndex < 0) gridIndex = neighbours[1];
        var best = lattice.Point(gridIndex);
        for (int i = 0; i < 8; ++i) L[i] = (sbyte)((best[i] - 1) / 2);
        return gridIndex;
    }

    /// <summary>
    /// A block's weights: importance·√(σ² + x²) with an importance matrix (σ² = 2·Σx²/256 over the super-block),
    /// else x² (IQ1_M only).
    /// </summary>
    public static void Weights(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, float sigma2, Span<float> weight)
    {
        if (!qw.IsEmpty)
            for (int i = 0; i < xb.Length; ++i) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
        else
            for (int i = 0; i < xb.Length; ++i) weight[i] = xb[i] * xb[i];
    }

    /// <summary>The largest |x| of a block, as ggml's scan (MAX(max, fabsf(x)) from |x[0]|).</summary>
    public static float MaxAbs(ReadOnlySpan<float> xb)
    {
        float max = MathF.Abs(xb[0]);
        for (int i = 1; i < xb.Length; ++i)
        {
            float a = MathF.Abs(xb[i]);
            max = max > a ? max : a;
        }
        return max;
    }

    /// <summary>σ² of a super-block: 2·Σx²/QK_K, the sum in order.</summary>
    public static float Sigma2(ReadOnlySpan<float> xbl)
    {
        float sumx2 = 0;
        for (int i = 0; i < xbl.Length; ++i) sumx2 += xbl[i] * xbl[i];
        return 2 * sumx2 / xbl.Length;
    }
}
