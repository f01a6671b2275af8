using System.Text.Json;

namespace KvSharp.Tests;

/// <summary>
/// One llama.cpp reference case from ../shared/fixtures/manifest.json: the F32 KV cache dumps, and as
/// <see cref="F16Kv"/> the default (F16 KV cache) ones.
/// </summary>
public sealed record FixtureCase(string Name, string Type, string GgufFile, string BatchFile, string? SeqFile,
    int[] GreedyIds, float[] GreedyMargins, int[] PromptIds)
{
    /// <summary>llama.cpp's dumps of the same model with its default F16 KV cache.</summary>
    public FixtureCase F16Kv { get; init; } = null!;

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
            if (m.GetProperty("kv_cache_type").GetString() != "f16") throw new InvalidDataException("the main dumps should use llama.cpp's default F16 KV cache");
            FixtureCase Case(JsonElement dumps) => new(
                m.GetProperty("name").GetString()!,
                m.GetProperty("type").GetString()!,
                m.GetProperty("gguf").GetProperty("file").GetString()!,
                dumps.GetProperty("batch").GetProperty("file").GetString()!,
                dumps.TryGetProperty("seq", out var seq) ? seq.GetProperty("file").GetString() : null,
                dumps.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                dumps.GetProperty("greedy_top2_margin").EnumerateArray().Select(e => e.GetSingle()).ToArray(),
                prompt);
            list.Add(Case(kv32) with { F16Kv = Case(m) });
        }
        return list;
    }
}
