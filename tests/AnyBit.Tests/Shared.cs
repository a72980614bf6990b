using AnyBit.IO;

namespace AnyBit.Tests;

/// <summary>Locates ../shared (fixtures and data) beside the repository, as CI lays it out.</summary>
public static class Shared
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AnyBit.slnx"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException("cannot find the repository root (AnyBit.slnx) above " + AppContext.BaseDirectory);
        string shared = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        if (!Directory.Exists(shared)) throw new InvalidOperationException($"the shared fixtures folder is missing: {shared}");
        return shared;
    }

    public static string Fixture(params string[] parts) => Path.Combine([Root, "fixtures", .. parts]);
    public static string Data(params string[] parts) => Path.Combine([Root, "data", .. parts]);

    public static float[] ReadF32(string file, string tensor)
    {
        using var st = SafetensorsFile.Open(file);
        return (st.Find(tensor) ?? throw new InvalidOperationException($"{file} has no {tensor}")).ToFloat32();
    }

    public static int[] ReadI32(string file, string tensor) => ReadF32(file, tensor).Select(v => (int)v).ToArray();

    public static bool Has(string file, string tensor)
    {
        using var st = SafetensorsFile.Open(file);
        return st.Find(tensor) is not null;
    }

    /// <summary>A fresh temporary folder for a test's output files.</summary>
    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "anybit-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
