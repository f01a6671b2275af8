using System.Text.Json;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// gpt-oss's template gets the Harmony tool-call syntax: it reads a reply's call and its reasoning together, and a
/// forced call opens the commentary message to the one function, whose arguments the model then writes.
/// </summary>
public class HarmonyToolCallSyntaxTests
{
    private static readonly ChatTemplate GptOss = ChatTemplate.Parse(
        TemplateTestData.Load("jinja2-more-templates.json").GetProperty("templates").GetProperty("extra__openai-gpt-oss-120b.jinja").GetString()!, "gpt-oss");

    private static readonly JsonElement Tools = JsonDocument.Parse("""
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time"}}]
        """).RootElement.Clone();

    [Fact]
    public void ReadsTheCallAndTheReasoning()
    {
        var syntax = ToolCallSyntax.Of(GptOss)!;
        Assert.Equal("harmony", syntax.Name);
        var reply = syntax.Parse("<|channel|>analysis<|message|>Need it.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}");
        Assert.Equal("Need it.", reply.Reasoning);
        Assert.Equal("", reply.Content);
        var call = Assert.Single(reply.Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void AForcedCallOpensTheMessageToItsFunction()
    {
        var syntax = ToolCallSyntax.Of(GptOss)!;
        var forced = syntax.Force(Tools, "get_weather");
        Assert.Equal(" to=functions.get_weather<|channel|>commentary json<|message|>", forced.Opening);
        var call = Assert.Single(syntax.Parse(forced.Reply("{\"city\": \"Oslo\"}")).Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Oslo\"}"), (call.Name, call.Arguments));
        Assert.Contains("must name its function", Assert.Throws<ArgumentException>(() => syntax.Force(Tools)).Message);
    }
}
