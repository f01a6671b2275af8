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

    public static TheoryData<int> Indices() => TemplateTestData.CaseIndices(Data);

    [Theory]
    [MemberData(nameof(Indices))]
    public void RendersAsJinja2(int index)
    {
        var (expected, actual) = TemplateTestData.RenderCase(Data, index);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void EveryBuiltInTemplateIsCovered()
    {
        var covered = Cases.Select(c => c.GetProperty("template").GetString()).ToHashSet();
        Assert.All(ChatTemplate.BuiltInNames, name => Assert.Contains(name, covered));
    }
}
