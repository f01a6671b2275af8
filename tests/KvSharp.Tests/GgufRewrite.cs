using KvSharp.Gguf;
using KvSharp.Tensors;

namespace KvSharp.Tests;

/// <summary>Copies a fixture GGUF to a temporary file, editing metadata and tensors on the way (tests of bad or variant files).</summary>
public static class GgufRewrite
{
    public static string Rewrite(string fixture, Func<string, GgufValue, GgufValue>? metadata = null,
        Func<GgufTensorInfo, (GgmlType Type, long[] Dims, byte[] Data)?>? tensor = null,
        Action<GgufWriter>? add = null, string? drop = null)
    {
        using var g = GgufFile.Open(TestPaths.Fixture(fixture));
        var w = new GgufWriter(g.Alignment, g.Version);
        foreach (var key in g.MetadataKeys)
            if (key != "general.alignment" && key != drop) w.Add(key, metadata?.Invoke(key, g.Metadata[key]) ?? g.Metadata[key]);
        foreach (var t in g.Tensors)
        {
            var replaced = tensor == null ? (t.Type, t.Dimensions, g.GetTensorBytes(t).ToArray()) : tensor(t);
            if (replaced is { } r) w.AddTensor(t.Name, r.Type, r.Dims, r.Data);
        }
        add?.Invoke(w);
        string path = Path.Combine(Path.GetTempPath(), $"kvsharp-test-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        return path;
    }
}
