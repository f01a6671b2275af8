using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// Real templates with tools (llama.cpp's models/templates: Qwen 2.5, Llama 3.1-3.3, Mistral Nemo, Hermes 2 Pro and
/// 3, Functionary 3.1 and 3.2, Command R7B) render a conversation with tool definitions, an assistant's tool call and
/// the tool's answer exactly as Python Jinja2 does, each getting the arguments as text or as an object as minja's probe
/// decides (jinja2-tool-templates.json).
/// </summary>
public class ToolTemplateTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("jinja2-tool-templates.json");
    public static TheoryData<int> Indices() => TemplateTestData.CaseIndices(Data);

    private static ChatTemplate Template(string name) =>
        ChatTemplate.Parse(Data.GetProperty("templates").GetProperty(name).GetString()!, name).WithClock(() => TemplateTestData.FixedNow);

    [Theory]
    [MemberData(nameof(Indices))]
    public void RendersToolsAndToolCallsAsJinja2(int index)
    {
        var (expected, actual) = TemplateTestData.RenderCase(Data, index, new Dictionary<string, object?> { ["tools"] = Data.GetProperty("tools") });
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct.jinja", true)]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct.jinja", true)]
    [InlineData("mistralai-Mistral-Nemo-Instruct-2407.jinja", true)]
    [InlineData("meetkai-functionary-medium-v3.2.jinja", false)]
    [InlineData("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", false)]
    public void TheProbeGivesArgumentsAsAnObjectOnlyToTemplatesThatNeedOne(string name, bool asObject) =>
        Assert.Equal(asObject, Template(name).RequiresObjectArguments);
}
