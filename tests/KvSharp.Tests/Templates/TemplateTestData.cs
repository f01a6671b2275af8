using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>The JSON test data beside these tests (gathered from llama.cpp's tests and rendered by Python Jinja2; see each file's "source").</summary>
internal static class TemplateTestData
{
    public static string Dir => Path.Combine(TestPaths.RepoRoot, "tests", "KvSharp.Tests", "Templates");

    public static JsonElement Load(string file) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, file))).RootElement;

    public static ChatMessage[] Messages(JsonElement array) => array.EnumerateArray().Select(Message).ToArray();

    /// <summary>A message in OpenAI's shape: role, content, and an assistant's tool_calls (arguments as JSON text) or a tool turn's tool_call_id and name.</summary>
    private static ChatMessage Message(JsonElement m) => new(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)
    {
        ToolCalls = m.TryGetProperty("tool_calls", out var calls)
            ? [.. calls.EnumerateArray().Select(c => new ChatToolCall(c.GetProperty("id").GetString()!, c.GetProperty("function").GetProperty("name").GetString()!,
                c.GetProperty("function").GetProperty("arguments").GetString()!))]
            : null,
        ToolCallId = m.TryGetProperty("tool_call_id", out var id) ? id.GetString() : null,
        Name = m.TryGetProperty("name", out var name) ? name.GetString() : null,
    };

    /// <summary>The date the Jinja2 renderings used for strftime_now.</summary>
    public static readonly DateTimeOffset FixedNow = new(2024, 7, 26, 13, 45, 0, TimeSpan.Zero);
}
