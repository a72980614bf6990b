using AnyBit.Formats;
using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>
/// What the IQ3 fixtures (Fixtures/ggml/IQ3_*) do not reach: ggml's handling of all-zero blocks of 32, checked once
/// against ggml_quantize_chunk at llama.cpp c392e50 and written out here.
/// </summary>
public class IQ3Tests
{
    /// <summary>
    /// quantize_iq3_s skips an all-zero block of 32 without moving its index and sign pointers on, so the blocks after
    /// it are stored one block early and the last block's slots stay zero (dequantizing misplaced, as llama.cpp's
    /// files are). The 9th index bits are addressed by block and stay in place.
    /// </summary>
    [Fact]
    public void Iq3_s_stores_the_blocks_after_an_all_zero_block_one_block_early()
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var format = FormatTable.ByType(TensorType.IQ3_S)!;
        var dense = new byte[format.BytesPerBlock];
        format.QuantizeRow(x, dense);
        Array.Clear(x, 64, 32); // block 2
        var sparse = new byte[format.BytesPerBlock];
        format.QuantizeRow(x, sparse);
        const int qs = 2, signs = 2 + 64 + 8;
        // Blocks 0-1 as before; block 3's indices and signs in block 2's slots, …, block 7's in block 6's; block 7's empty.
        Assert.Equal(dense.AsSpan(qs, 16).ToArray(), sparse.AsSpan(qs, 16).ToArray());
        Assert.Equal(dense.AsSpan(qs + 24, 40).ToArray(), sparse.AsSpan(qs + 16, 40).ToArray());
        Assert.All(sparse.AsSpan(qs + 56, 8).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(dense.AsSpan(signs + 12, 20).ToArray(), sparse.AsSpan(signs + 8, 20).ToArray());
        Assert.All(sparse.AsSpan(signs + 28, 4).ToArray(), b => Assert.Equal(0, b));
    }

    /// <summary>
    /// IQ3_XXS stores a block of 32 below GROUP_MAX_EPS_IQ3_XXS (1e-8) as grid point 0, no signs, scale 0: the grid has no
    /// zero, so it dequantizes to d·0.5·0.5·4 = d in every weight.
    /// </summary>
    [Fact]
    public void Iq3_xxs_stores_negligible_blocks_as_zeros()
    {
        var rng = new Random(4);
        var x = Enumerable.Range(0, 256).Select(i => (float)(rng.NextDouble() * 2 - 1) * (i is >= 32 and < 64 ? 1e-9f : 1f)).ToArray();
        var format = FormatTable.ByType(TensorType.IQ3_XXS)!;
        var bytes = new byte[format.BytesPerBlock];
        format.QuantizeRow(x, bytes);
        Assert.All(bytes.AsSpan(2 + 8, 8).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(0u, BitConverter.ToUInt32(bytes, 2 + 64 + 4));
        var back = new float[256];
        format.Dequantize(bytes, back);
        float d = (float)BitConverter.ToHalf(bytes, 0);
        Assert.True(d > 0);
        Assert.All(back.AsSpan(32, 32).ToArray(), v => Assert.Equal(d, v));
    }
}
