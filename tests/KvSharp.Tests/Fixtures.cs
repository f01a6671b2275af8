using System.Text.Json;

namespace KvSharp.Tests;

/// <summary>One llama.cpp reference case from ../shared/fixtures/manifest.json (F32 KV cache dumps).</summary>
public sealed record FixtureCase(string Name, string Type, string GgufFile, string BatchFile, string? SeqFile,
    int[] GreedyIds, float[] GreedyMargins, int[] PromptIds)
{
    public override string ToString() => $"{Name}.{Type}";

    public string GgufPath => TestPaths.Fixture(GgufFile);

    public float[] ReadLogits(string file)
    {
        var bytes = File.ReadAllBytes(TestPaths.Fixture(file));
        var floats = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, floats, 0, bytes.Length);
        return floats;
    }
}

public static class Fixtures
{
    private static readonly Lazy<IReadOnlyList<FixtureCase>> _cases = new(Load);

    public static IReadOnlyList<FixtureCase> All => _cases.Value;

    public static FixtureCase Get(string name, string type) => All.Single(c => c.Name == name && c.Type == type);

    public static TheoryData<string, string> Names()
    {
        var data = new TheoryData<string, string>();
        foreach (var c in All) data.Add(c.Name, c.Type);
        return data;
    }

    private static IReadOnlyList<FixtureCase> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("manifest.json")));
        var prompt = doc.RootElement.GetProperty("prompt").GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var list = new List<FixtureCase>();
        foreach (var m in doc.RootElement.GetProperty("models").EnumerateArray())
        {
            var kv32 = m.GetProperty("extra_dumps").EnumerateArray().Single(d => d.GetProperty("kv_cache_type").GetString() == "f32");
            list.Add(new FixtureCase(
                m.GetProperty("name").GetString()!,
                m.GetProperty("type").GetString()!,
                m.GetProperty("gguf").GetProperty("file").GetString()!,
                kv32.GetProperty("batch").GetProperty("file").GetString()!,
                kv32.TryGetProperty("seq", out var seq) ? seq.GetProperty("file").GetString() : null,
                kv32.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                kv32.GetProperty("greedy_top2_margin").EnumerateArray().Select(e => e.GetSingle()).ToArray(),
                prompt));
        }
        return list;
    }
}
