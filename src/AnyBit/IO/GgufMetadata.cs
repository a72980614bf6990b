namespace AnyBit.IO;

/// <summary>
/// GGUF metadata with typed access and the shapes of the tensors beside it: read from a file
/// (<see cref="GgufFile.TypedMetadata"/>), or from the metadata a writer is about to write
/// (<see cref="GgufWriter.PendingMetadata"/>), so that a model can be configured from exactly what its output file
/// will say, by the same readers, without writing the file.
/// </summary>
public sealed class GgufMetadata
{
    private readonly IReadOnlyDictionary<string, object> _values;
    private readonly Func<string, long[]?> _tensorShape;

    /// <param name="values">values as a GGUF reader holds them: .NET primitives, strings, <see cref="GgufArray"/></param>
    /// <param name="tensorShape">the shape of a tensor by name, null when there is none</param>
    /// <param name="source">the file named in errors</param>
    public GgufMetadata(IReadOnlyDictionary<string, object> values, Func<string, long[]?> tensorShape, string source)
    {
        _values = values; _tensorShape = tensorShape; Source = source;
    }

    /// <summary>The file the metadata belongs to, for errors.</summary>
    public string Source { get; }

    /// <summary>Shape of a tensor (outermost dimension first), or null when there is no such tensor.</summary>
    public long[]? TensorShape(string name) => _tensorShape(name);

    public bool TryGet(string key, out object value) => _values.TryGetValue(key, out value!);

    public string? GetString(string key) => _values.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>An integer value of any integer type (or null when absent or not an integer).</summary>
    public long? GetInteger(string key) => _values.TryGetValue(key, out var v) ? v switch
    {
        byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint ui => ui, int i => i,
        ulong ul => ul > long.MaxValue ? null : (long)ul, long l => l, bool bo => bo ? 1 : 0, _ => null,
    } : null;

    public double? GetFloat(string key) => _values.TryGetValue(key, out var v) ? v switch
    {
        float f => f, double d => d, _ => GetInteger(key),
    } : null;

    public bool? GetBool(string key) => _values.TryGetValue(key, out var v) && v is bool b ? b : null;

    public GgufArray? GetArray(string key) => _values.TryGetValue(key, out var v) ? v as GgufArray : null;
}
