namespace AnyBit.IO;

/// <summary>Type tags of GGUF metadata values, as in the GGUF specification.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
    UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>A GGUF metadata array: its element type and the values (a typed .NET array).</summary>
public sealed record GgufArray(GgufValueType ElementType, Array Values)
{
    public int Count => Values.Length;
    public override string ToString() => $"[{ElementType} × {Count}]";
}
