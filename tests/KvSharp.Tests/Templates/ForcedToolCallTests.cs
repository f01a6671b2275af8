using System.Text;
using System.Text.Json;
using KvSharp.Sampling;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// A forced tool call in every family's syntax: what the model may write after the opening is exactly a call to one of
/// the tools with arguments its schema allows (every shorter text Partial, the whole Complete, a wrong name or argument
/// Invalid), and the reply made of opening, that text and closing reads back as that call.
/// </summary>
public class ForcedToolCallTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("jinja2-tool-templates.json");

    private static readonly JsonElement Tools = JsonDocument.Parse("""
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"enum": ["CET", "UTC"]}}, "required": ["zone"]}}}]
        """).RootElement.Clone();

    private static ToolCallSyntax Syntax(string templateOrMarker) =>
        ToolCallSyntax.Of(templateOrMarker.EndsWith(".jinja", StringComparison.Ordinal)
            ? ChatTemplate.Parse(Data.GetProperty("templates").GetProperty(templateOrMarker).GetString()!, templateOrMarker)
            : ChatTemplate.Parse("{{ '" + templateOrMarker + "' }}", "marker"))!;

    private static JsonPrefixStatus Check(JsonSchemaPrefix constraint, string text) => constraint.Check(Encoding.UTF8.GetBytes(text));

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct.jinja", "<tool_call>\n", "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}")]
    [InlineData("mistralai-Mistral-Nemo-Instruct-2407.jinja", "[TOOL_CALLS][", "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}")]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct.jinja", "", "{\"name\": \"get_time\", \"parameters\": {\"zone\": \"UTC\"}}")]
    [InlineData("CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", "<|START_ACTION|>[\n    ",
        "{\"tool_call_id\": \"0\", \"tool_name\": \"get_time\", \"parameters\": {\"zone\": \"UTC\"}}")]
    [InlineData(" functools[", " functools[", "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}")]
    [InlineData("<|tool_call|>", "<|tool_call|>[", "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}")]
    [InlineData("meetkai-functionary-medium-v3.2.jinja", "", "get_time\n{\"zone\": \"UTC\"}")]
    [InlineData("meetkai-functionary-medium-v3.1.jinja", "<function=", "get_time>{\"zone\": \"UTC\"}")]
    [InlineData("<｜tool▁calls▁begin｜>```json", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>", "get_time\n```json\n{\"zone\": \"UTC\"}")]
    public void ARequiredCallIsOneOfTheToolsAndReadsBack(string template, string opening, string generated)
    {
        var syntax = Syntax(template);
        var forced = syntax.Force(Tools);
        Assert.Equal(opening, forced.Opening);
        Assert.Equal(JsonPrefixStatus.Complete, Check(forced.Constraint, generated));
        for (int n = 0; n < generated.Length; n++) Assert.Equal(JsonPrefixStatus.Partial, Check(forced.Constraint, generated[..n]));
        // Another zone than the schema's, or a tool that is not there: nothing that starts so is allowed.
        Assert.Equal(JsonPrefixStatus.Invalid, Check(forced.Constraint, generated.Replace("UTC", "PST")));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(forced.Constraint, generated.Replace("get_time", "get_tide")));

        var call = Assert.Single(syntax.Parse(forced.Reply(generated)).Calls);
        Assert.Equal("get_time", call.Name);
        Assert.Equal("UTC", JsonDocument.Parse(call.Arguments).RootElement.GetProperty("zone").GetString());
    }

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct.jinja", "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}")]
    [InlineData("meetkai-functionary-medium-v3.1.jinja", "{\"city\": \"Oslo\"}")]
    [InlineData("<｜tool▁calls▁begin｜>", "{\"city\": \"Oslo\"}")]
    public void ANamedFunctionIsTheOnlyOneAllowed(string template, string generated)
    {
        var syntax = Syntax(template);
        var forced = syntax.Force(Tools, "get_weather");
        Assert.Equal(JsonPrefixStatus.Complete, Check(forced.Constraint, generated));
        var call = Assert.Single(syntax.Parse(forced.Reply(generated)).Calls);
        Assert.Equal(("get_weather", "Oslo"), (call.Name, JsonDocument.Parse(call.Arguments).RootElement.GetProperty("city").GetString()));
        // The other tool is not allowed (where its name is in the JSON), nor are its arguments.
        Assert.Equal(JsonPrefixStatus.Invalid, Check(forced.Constraint, generated.Replace("get_weather", "get_time").Replace("city", "zone")));
    }

    [Fact]
    public void DeepSeekV31CanBeHeldToANamedFunctionOnly()
    {
        var syntax = Syntax("<｜tool▁calls▁begin｜>");
        var e = Assert.Throws<ArgumentException>(() => syntax.Force(Tools));
        Assert.Contains("must name its function", e.Message);
        Assert.EndsWith("get_weather<｜tool▁sep｜>", syntax.Force(Tools, "get_weather").Opening);
    }

    [Fact]
    public void AnUnknownFunctionOrAnUnenforcedKeywordIsNamed()
    {
        var syntax = Syntax("Qwen-Qwen2.5-7B-Instruct.jinja");
        Assert.Contains("'get_tide'", Assert.Throws<ArgumentException>(() => syntax.Force(Tools, "get_tide")).Message);
        var pattern = JsonDocument.Parse("""
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(?=A)"}}}}}]
            """).RootElement;
        Assert.Contains("tools[0].function.parameters.properties.code.pattern", Assert.Throws<ArgumentException>(() => syntax.Force(pattern)).Message);
    }

    [Fact]
    public void AFunctionWithoutParametersTakesAnyObject()
    {
        var tools = JsonDocument.Parse("""[{"type": "function", "function": {"name": "ping"}}]""").RootElement;
        var forced = Syntax("Qwen-Qwen2.5-7B-Instruct.jinja").Force(tools);
        Assert.Equal(JsonPrefixStatus.Complete, Check(forced.Constraint, "{\"name\": \"ping\", \"arguments\": {\"any\": [1, true]}}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(forced.Constraint, "{\"name\": \"ping\", \"arguments\": 3"));
    }

    [Fact]
    public void AfterAnOpenThinkBlockTheCallClosesItFirst()
    {
        var forced = Syntax("Qwen-Qwen2.5-7B-Instruct.jinja").Force(Tools);
        var template = ChatTemplate.Parse("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n{{ think }}", "t");
        var (plain, same) = forced.Begin(template.Render([ChatMessage.User("Hi")], true, extra: new Dictionary<string, object?> { ["think"] = "" }));
        Assert.Same(forced, same);
        Assert.EndsWith("<|im_start|>assistant\n<tool_call>\n", plain.Prompt);
        var (thinking, call) = forced.Begin(template.Render([ChatMessage.User("Hi")], true, extra: new Dictionary<string, object?> { ["think"] = "<think>\n" }));
        Assert.EndsWith("<think>\n</think>\n\n<tool_call>\n", thinking.Prompt);
        var (thought, answer) = ReasoningSplitter.Split(call.Reply("{}"), startsInside: true);
        Assert.Equal("", thought);
        Assert.StartsWith("<tool_call>", answer);
    }

    [Fact]
    public void ParametersWithReferencesKeepThemWhereverTheCallPutsThem()
    {
        var tools = JsonDocument.Parse("""
            [{"type": "function", "function": {"name": "route", "parameters": {"$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
              "type": "object", "properties": {"from": {"$ref": "#/$defs/Place"}, "to": {"$ref": "#/$defs/Place"}}, "required": ["from", "to"]}}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}]
            """).RootElement;
        var forced = Syntax("Qwen-Qwen2.5-7B-Instruct.jinja").Force(tools);
        Assert.Equal(JsonPrefixStatus.Complete,
            Check(forced.Constraint, "{\"name\": \"route\", \"arguments\": {\"from\": {\"city\": \"Oslo\"}, \"to\": {\"city\": \"Rome\"}}}"));
        Assert.Equal(JsonPrefixStatus.Invalid, Check(forced.Constraint, "{\"name\": \"route\", \"arguments\": {\"from\": {\"town\""));
        // Alone, the tool's arguments are the whole JSON, and its references too.
        var leads = Syntax("meetkai-functionary-medium-v3.1.jinja").Force(tools);
        Assert.Equal(JsonPrefixStatus.Complete, Check(leads.Constraint, "route>{\"from\": {\"city\": \"Oslo\"}, \"to\": {\"city\": \"Rome\"}}"));
    }
}
