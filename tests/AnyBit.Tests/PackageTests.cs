using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;

namespace AnyBit.Tests;

/// <summary>The library ships as a NuGet package with its XML docs, and its public API is documented.</summary>
public class PackageTests
{

    private static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir!.FullName, "AnyBit.slnx"))) dir = dir.Parent;
        return dir.FullName;
    }

    [Fact]
    public void Pack_produces_a_package_with_the_library_docs_and_dependencies()
    {
        string output = Shared.TempDir();
        try
        {
            var psi = new ProcessStartInfo("dotnet", ["pack", Path.Combine(FindRepo(), "src", "AnyBit", "AnyBit.csproj"), "-c", "Release", "--no-build", "-o", output])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string log = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            Assert.True(p.WaitForExit(120_000), "dotnet pack timed out");
            Assert.True(p.ExitCode == 0, log);
            string package = Directory.GetFiles(output, "AnyBit.*.nupkg").Single();
            using var zip = ZipFile.OpenRead(package);
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("lib/net10.0/AnyBit.dll", names);
            Assert.Contains("lib/net10.0/AnyBit.xml", names);
            Assert.Contains("README.md", names);
            using var nuspec = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
            var deps = XDocument.Load(nuspec).Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => (string)e.Attribute("id")!).ToList();
            Assert.Contains("Microsoft.Extensions.AI.Abstractions", deps);
            Assert.Contains("System.Numerics.Tensors", deps);
        }
        finally
        {
            Directory.Delete(output, true);
        }
    }

    /// <summary>Every public member of the front-door types carries an XML doc summary.</summary>
    [Theory]
    [InlineData(typeof(LanguageModel))]
    [InlineData(typeof(LanguageModelOptions))]
    [InlineData(typeof(AnyBit.Inference.GenerationOptions))]
    [InlineData(typeof(AnyBit.Inference.GenerationChunk))]
    [InlineData(typeof(AnyBit.Inference.GenerationStream))]
    [InlineData(typeof(AnyBit.Inference.GenerationScheduler))]
    [InlineData(typeof(AnyBit.AI.AnyBitChatClient))]
    [InlineData(typeof(AnyBit.Text.ChatTemplate))]
    public void Public_api_is_documented(Type type)
    {
        string xml = Path.ChangeExtension(type.Assembly.Location, ".xml");
        var documented = XDocument.Load(xml).Descendants("member").Select(m => (string)m.Attribute("name")!).ToHashSet();
        Assert.Contains("T:" + type.FullName, documented);
        var missing = new List<string>();
        foreach (var m in type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
        {
            if (m is MethodInfo { IsSpecialName: true } || m.Name is "Equals" or "GetHashCode" or "ToString" or "Deconstruct" or "<Clone>$" or "PrintMembers" or "EqualityContract") continue;
            string prefix = m switch { PropertyInfo => "P:", MethodInfo => "M:", FieldInfo => "F:", ConstructorInfo => "M:", _ => "" };
            if (prefix == "" || m is ConstructorInfo { IsPublic: true } c && c.GetParameters().Length == 0) continue; // implicit default constructors
            string name = prefix + type.FullName + "." + (m is ConstructorInfo ? "#ctor" : m.Name);
            if (!documented.Any(d => d == name || d.StartsWith(name + "(", StringComparison.Ordinal) || d.StartsWith(name + "``", StringComparison.Ordinal)))
                missing.Add(name);
        }
        Assert.Empty(missing);
    }
}
