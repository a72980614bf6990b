using AnyBit.Kernels;
using AnyBit.Kernels.Quantized;

namespace AnyBit.Models;

/// <summary>
/// A linear layer's weight [rows, columns]: float32 (the reference path, calibration and the methods that edit
/// weights), packed for the integer kernels, or held narrow for the float tiles (16 bits, or MXFP8 blocks as stored)
/// where that keeps every value exactly; in the last two cases no float copy is held.
/// </summary>
public sealed class LinearWeight : IDisposable
{
    private readonly bool _ownsDense;

    /// <param name="dense">the float32 weight</param>
    /// <param name="owns">false when the buffer belongs to another tensor (a head tied to the embedding)</param>
    public LinearWeight(NativeBuffer dense, bool owns = true) { Dense = dense; _ownsDense = owns; }

    public LinearWeight(PackedMatrix packed) => Packed = packed;

    public LinearWeight(NarrowMatrix narrow) => Narrow = narrow;

    /// <summary>The float32 weight, or null when the weight is packed.</summary>
    public NativeBuffer? Dense { get; }
    /// <summary>The packed weight for the integer kernels, or null when the weight is float32.</summary>
    public PackedMatrix? Packed { get; }
    /// <summary>The weight held narrow for <see cref="MatMulNarrow"/>, or null.</summary>
    public NarrowMatrix? Narrow { get; }

    /// <summary>What multiplies this weight, as recorded when it was loaded (the packed or narrow matrix's choice, else
    /// the float32 GEMM); <c>anybit bench</c> prints it.</summary>
    public KernelChoice Kernel => Packed?.Choice ?? Narrow?.Choice ?? KernelChoice.Float32;

    /// <summary>The float32 weight; only models loaded with float kernels have one.</summary>
    public NativeBuffer F32 => Dense ?? throw new InvalidOperationException("this weight is held for the fast kernels (packed or narrow); load the model with KernelMode.Float32 to edit weights");

    /// <summary>
    /// The packed matrix holds W / OutputScale, so y = OutputScale · (packed · x): BitNet's ternary codes, with the
    /// tensor's float32 scale applied to the product (see <see cref="Ternary.Pack"/>). 1 for every other weight.
    /// </summary>
    public float OutputScale { get; init; } = 1;

    /// <summary>
    /// For a packed weight whose columns are stored permuted (GPTQ act-order): stored column k multiplies input
    /// InputOrder[k], so the input is gathered in this order first. Null when columns are in input order.
    /// </summary>
    public int[]? InputOrder { get; init; }

    /// <summary>The type the weight was stored as ("Q4_K", "BF16", "int3:g64"...), for reports.</summary>
    public string StoredType { get; init; } = "F32";

    /// <summary>Bytes the forward pass reads from this weight per token.</summary>
    public long ByteLength => Packed?.ByteLength ?? Narrow?.ByteLength ?? (Dense?.Length ?? 0) * sizeof(float);

    public void Dispose()
    {
        if (_ownsDense) Dense?.Dispose();
        Packed?.Dispose();
        Narrow?.Dispose();
    }
}
