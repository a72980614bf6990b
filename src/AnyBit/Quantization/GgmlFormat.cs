using AnyBit.IO;

namespace AnyBit.Quantization;

/// <summary>
/// A ggml type: one row of the <see cref="Formats.FormatTable"/>, declared in its own file under Formats/Ggml
/// (block layout, reference quantizer, block decoder, kernel traits). llama.cpp reads and writes these files, and
/// AnyBit quantizes them byte for byte as llama.cpp does.
/// </summary>
public abstract class GgmlFormat : TensorFormat
{
    /// <summary>ggml's type id, as stored in GGUF files.</summary>
    public abstract TensorType Type { get; }

    /// <summary>
    /// llama.cpp's file type (<c>general.file_type</c>, LLAMA_FTYPE_MOSTLY_*) of a file quantized to this type alone;
    /// null where llama.cpp has none.
    /// </summary>
    public abstract uint? FileType { get; }

    /// <summary>The type as ggml prints it: "Q4_K".</summary>
    public string TypeName => Type.ToString();

    /// <summary>The spec users type: ggml's name in lower case ("q4_k").</summary>
    public sealed override string Name => TypeName.ToLowerInvariant();

    public sealed override TensorType? GgmlType => Type;
}
