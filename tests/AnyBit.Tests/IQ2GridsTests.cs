using AnyBit.Formats.Ggml;

namespace AnyBit.Tests;

/// <summary>ggml-common.h's IQ2 decode tables, as copied: sizes, magnitudes and the sign-parity rule.</summary>
public class IQ2GridsTests
{
    [Fact]
    public void Tables_have_ggmls_shape()
    {
        Assert.Equal(256, IQ2Grids.iq2xxs_grid.Length);
        Assert.Equal(512, IQ2Grids.iq2xs_grid.Length);
        Assert.Equal(1024, IQ2Grids.iq2s_grid.Length);
        foreach (var grid in new[] { IQ2Grids.iq2xxs_grid.ToArray(), IQ2Grids.iq2xs_grid.ToArray(), IQ2Grids.iq2s_grid.ToArray() })
        {
            Assert.Equal(grid.Length, grid.Distinct().Count());
            foreach (ulong g in grid)
                for (int k = 0; k < 8; k++) Assert.Contains((byte)(g >> (8 * k)), new byte[] { 8, 25, 43 });
        }
        for (int i = 0; i < 128; i++) Assert.Equal(i | (int.PopCount(i) % 2) << 7, IQ2Grids.ksigns_iq2xs[i]);
        for (int k = 0; k < 8; k++) Assert.Equal(1 << k, IQ2Grids.kmask_iq2xs[k]);
    }
}
