namespace AnyBit.Kernels;

/// <summary>
/// What multiplies one weight matrix, decided once when the matrix is loaded and recorded on it
/// (<see cref="Quantized.PackedMatrix.Choice"/>, <see cref="NarrowMatrix.Choice"/>, <see cref="Models.LinearWeight.Kernel"/>).
/// Reports (<c>anybit bench</c>'s kernel column, <see cref="Evaluation.KernelReport"/>) print this record; nothing
/// re-derives the choice to describe it. The decisions themselves: <see cref="Quantized.KernelPaths.LayoutFor"/> and
/// <see cref="Quantized.KernelPaths.Choose"/> (layout and instruction set of a quantized matrix), <c>PackedKernel.Tiles.cs</c>
/// (its tiles), <see cref="Models.WeightLoader"/> (packed, narrow or float32).
/// </summary>
/// <param name="Path">The instruction-set path ("avx-vnni int8", "avx2 int8", "int8 scalar reference").</param>
/// <param name="Tile">The tile strategy ("16-row tiles (paired 8-row groups)"); empty where no tiles run.</param>
/// <param name="Reason">Why this path and tile, in a few words.</param>
public sealed record KernelChoice(string Path, string Tile, string Reason)
{
    /// <summary>The scalar integer reference, for <see cref="Quantized.KernelMode.Reference"/> runs.</summary>
    public static readonly KernelChoice Reference = new("int8 scalar reference", "", "");

    /// <summary>Float32 weights (dequantized at load, or float files).</summary>
    public static readonly KernelChoice Float32 = new("f32 GEMM (dequantized at load)", "4x4 Vector512 tiles", "no integer kernel for the format, or --kernels f32");

    /// <summary>Path and tile, as the reports print them (a fallback with no tiles gives its reason instead).</summary>
    public override string ToString() =>
        Tile.Length > 0 ? $"{Path}, {Tile}" : Reason.Length > 0 ? $"{Path} ({Reason})" : Path;
}
