using System.Runtime.InteropServices;
using System.Security.Cryptography;
using AnyBit.Formats.Ggml;
using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>
/// The IQ2 search lattices against ggml's own: the sha256 of the grid, map and neighbour arrays that ggml-quants.c's
/// iq2xs_init_impl builds (commit c392e50, compiled and dumped as raw little-endian arrays), one kind at a time.
/// </summary>
public class IQ2LatticeTests
{
    public static TheoryData<string, int, string, string, string> Lattices => new()
    {
        { "IQ2_XXS", 256, "66eeec56ebb1a92f016b0f2db4e541fd89f6d0e98420e0320f141ef9d8352c44", "709b1f45e8457bc27656b3bc37ea881ffc567fe71540df5aae912097b77e2fd1", "fb8727a3ecbf6124f63c263d0c1b05925d580426a1d732df1d91514b84a21724" },
        { "IQ2_XS", 512, "9ecaef3c92b0303966e67ad654b072680ee1fbd5a10e671ffe4f2d402c72a7fd", "d6b796100158d2c7de48d0a2d5c38efc400471f822f874f631ab71dd47454326", "b94f3f7601b0130674b6e0b7fdccc240b7234d31db4d60601dfc0ff6872a129e" },
        { "IQ1_S", 2048, "0f0eceb34d699cdb07efa55b2e8e4d5a56a4d30f645263db5e94999f1bdda165", "732ed77320813d3250cbecd7235db1a2d0a661ee4b54fa2a0b5d1cd4e08c5ef0", "9a5d4a8807610d7ecdb328c531a60a6e10a202801f9290a6ed17daf3b9a4b054" },
        { "IQ2_S", 1024, "55cf5d20e27350dd4273d9635292a4b05997fe3cc594002cc6c59844b24c6d1a", "bdd7645b9d68dcd282605e039b72ed729c4252e518c5d6ffb12282135a8c37c8", "7e06788dce7035c2d4fdc983be81429c26fc3106db8d76a2771b285f9c2eb8ed" },
    };

    [Theory]
    [MemberData(nameof(Lattices))]
    public void Lattice_is_ggmls(string type, int gridSize, string gridSha, string mapSha, string neighboursSha)
    {
        var lattice = IQ2Lattice.For(Enum.Parse<TensorType>(type));
        Assert.Equal(gridSize, lattice.GridSize);
        Assert.Equal(gridSha, Sha(MemoryMarshal.AsBytes(lattice.Grid.AsSpan())));
        Assert.Equal(mapSha, Sha(MemoryMarshal.AsBytes(lattice.Map.AsSpan())));
        Assert.Equal(neighboursSha, Sha(MemoryMarshal.AsBytes(lattice.Neighbours.AsSpan())));
        Assert.Same(lattice, IQ2Lattice.For(Enum.Parse<TensorType>(type)));
    }

    [Fact]
    public void IQ1_M_shares_IQ1_S_lattice() => Assert.Same(IQ2Lattice.For(TensorType.IQ1_S), IQ2Lattice.For(TensorType.IQ1_M));

    private static string Sha(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
