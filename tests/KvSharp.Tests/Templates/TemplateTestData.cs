using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>The JSON test data beside these tests (gathered from llama.cpp's tests and rendered by Python Jinja2; see each file's "source").</summary>
internal static class TemplateTestData
{
    public static string Dir => Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Templates");

    public static JsonElement Load(string file) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, file))).RootElement;

    public static ChatMessage[] Messages(JsonElement array) =>
        array.EnumerateArray().Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToArray();

    /// <summary>The date the Jinja2 renderings used for strftime_now.</summary>
    public static readonly DateTimeOffset FixedNow = new(2024, 7, 26, 13, 45, 0, TimeSpan.Zero);
}
