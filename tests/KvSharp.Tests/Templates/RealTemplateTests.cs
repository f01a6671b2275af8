using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// The built-in templates and nine long real templates from llama.cpp's models/templates (macros, tool calls,
/// tojson, strftime_now, loop controls) render every conversation of jinja2-rendered-templates.json exactly as
/// Python Jinja2 does.
/// </summary>
public class RealTemplateTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("jinja2-rendered-templates.json");
    private static readonly JsonElement[] Cases = Data.GetProperty("cases").EnumerateArray().ToArray();

    public static TheoryData<int> Indices() => new(Enumerable.Range(0, Cases.Length));

    [Theory]
    [MemberData(nameof(Indices))]
    public void RendersAsJinja2(int index)
    {
        var c = Cases[index];
        string name = c.GetProperty("template").GetString()!;
        var template = (Data.GetProperty("templates").TryGetProperty(name, out var source)
            ? ChatTemplate.Parse(source.GetString()!, name)
            : ChatTemplate.BuiltIn(name)).WithClock(() => TemplateTestData.FixedNow);
        var messages = TemplateTestData.Messages(Data.GetProperty("conversations").GetProperty(c.GetProperty("conversation").GetString()!));
        var rendered = template.Render(messages, c.GetProperty("add_generation_prompt").GetBoolean(),
            c.GetProperty("bos_token").GetString()!, c.GetProperty("eos_token").GetString()!);
        Assert.Equal(c.GetProperty("expected").GetString(), rendered.Text);
    }

    [Fact]
    public void EveryBuiltInTemplateIsCovered()
    {
        var covered = Cases.Select(c => c.GetProperty("template").GetString()).ToHashSet();
        Assert.All(ChatTemplate.BuiltInNames, name => Assert.Contains(name, covered));
    }
}
