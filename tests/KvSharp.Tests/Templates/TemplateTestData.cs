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

    /// <summary>
    /// Renders case <paramref name="index"/> of a rendered-templates file (its template from the file's "templates", else a
    /// built-in one; its conversation; <paramref name="extra"/> variables) and returns what it expects and what came out.
    /// </summary>
    public static (string Expected, string Actual) RenderCase(JsonElement data, int index, IReadOnlyDictionary<string, object?>? extra = null)
    {
        var c = data.GetProperty("cases")[index];
        string name = c.GetProperty("template").GetString()!;
        var template = (data.GetProperty("templates").TryGetProperty(name, out var source)
            ? ChatTemplate.Parse(source.GetString()!, name)
            : ChatTemplate.BuiltIn(name)).WithClock(() => FixedNow);
        var messages = Messages(data.GetProperty("conversations").GetProperty(c.GetProperty("conversation").GetString()!));
        var rendered = template.Render(messages, c.GetProperty("add_generation_prompt").GetBoolean(),
            c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!, extra);
        return (c.GetProperty("expected").GetString()!, rendered.Text);
    }

    /// <summary>The case indices of a rendered-templates file, for a theory.</summary>
    public static TheoryData<int> CaseIndices(JsonElement data) => new(Enumerable.Range(0, data.GetProperty("cases").GetArrayLength()));

    /// <summary>The date the Jinja2 renderings used for strftime_now.</summary>
    public static readonly DateTimeOffset FixedNow = new(2024, 7, 26, 13, 45, 0, TimeSpan.Zero);
}
