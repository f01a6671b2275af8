using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Templates;

namespace KvSharp.Tests.Templates;

/// <summary>
/// Tool calls read from a reply in the syntax the template's model family writes; what does not parse as a call stays
/// text, and a template that shows no syntax kvsharp reads has none.
/// </summary>
public class ToolCallSyntaxTests
{
    private static readonly JsonElement Data = TemplateTestData.Load("jinja2-tool-templates.json");

    private static ToolCallSyntax? SyntaxOf(string template) =>
        ToolCallSyntax.Of(ChatTemplate.Parse(Data.GetProperty("templates").GetProperty(template).GetString()!, template));

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct.jinja", "hermes")]
    [InlineData("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "hermes")]
    [InlineData("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "hermes")]
    [InlineData("mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral")]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3-json")]
    [InlineData("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3-json")]
    [InlineData("meta-llama-Llama-3.3-70B-Instruct.jinja", "llama3-json")]
    [InlineData("meetkai-functionary-medium-v3.2.jinja", "functionary-v3.2")]
    [InlineData("meetkai-functionary-medium-v3.1.jinja", "functionary-v3.1")]
    [InlineData("CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", "command-r7b")]
    public void TheSyntaxIsToldFromTheTemplate(string template, string? expected) => Assert.Equal(expected, SyntaxOf(template)?.Name);

    [Fact]
    public void NoSyntaxForATemplateWithoutTools() => Assert.Null(ToolCallSyntax.Of(ChatTemplate.BuiltIn("chatml")));

    [Fact]
    public void HermesCallsAreTheTaggedObjectsAndTheRestIsContent()
    {
        var syntax = SyntaxOf("Qwen-Qwen2.5-7B-Instruct.jinja")!;
        var reply = syntax.Parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n" +
                                 "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>");
        Assert.Equal("Let me check.", reply.Content);
        Assert.Equal(["get_weather", "get_time"], reply.Calls.Select(c => c.Name));
        Assert.Equal("{\"city\": \"Paris\"}", reply.Calls[0].Arguments);
        Assert.All(reply.Calls, c => Assert.Matches("^call_[A-Za-z0-9]{24}$", c.Id));
        Assert.NotEqual(reply.Calls[0].Id, reply.Calls[1].Id);
        // An unclosed last call (the reply ended at the end-of-turn token) still counts.
        Assert.Single(syntax.Parse("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}").Calls);
    }

    [Theory]
    [InlineData("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": </tool_call>")]
    [InlineData("<tool_call>{\"arguments\": {}}</tool_call>")]
    [InlineData("Just text, no call.")]
    public void WhatIsNotACallStaysText(string text)
    {
        var reply = SyntaxOf("Qwen-Qwen2.5-7B-Instruct.jinja")!.Parse(text);
        Assert.Empty(reply.Calls);
        Assert.Equal(text.Trim(), reply.Content);
    }

    [Fact]
    public void MistralCallsFollowTheMarkerWithIdsItsTemplateAccepts()
    {
        var syntax = SyntaxOf("mistralai-Mistral-Nemo-Instruct-2407.jinja")!;
        var reply = syntax.Parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}, {\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}]");
        Assert.Equal("", reply.Content);
        Assert.Equal(["get_weather", "get_time"], reply.Calls.Select(c => c.Name));
        Assert.Equal("abc123XYZ", reply.Calls[0].Id);
        Assert.Matches("^[A-Za-z0-9]{9}$", reply.Calls[1].Id);
        Assert.Empty(syntax.Parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": 3}]").Calls);
    }

    /// <summary>A syntax told from a template holding only <paramref name="marker"/> (DeepSeek R1's and FireFunction's templates are not in the test data).</summary>
    private static ToolCallSyntax Marked(string marker) => ToolCallSyntax.Of(ChatTemplate.Parse("{{ '" + marker + "' }}", "marker"))!;

    [Fact]
    public void DeepSeekR1CallsAreFencedBetweenItsTokens()
    {
        var syntax = Marked("<｜tool▁calls▁begin｜>");
        Assert.Equal("deepseek-r1", syntax.Name);
        var reply = syntax.Parse("<think>I should look it up.</think>\n\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n" +
                                 "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
        Assert.Equal("<think>I should look it up.</think>", reply.Content);
        var call = Assert.Single(reply.Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void CommandR7BCallsAreTheActionListAndItsTextTheResponse()
    {
        var syntax = SyntaxOf("CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja")!;
        var reply = syntax.Parse("<|START_THINKING|>Look it up.<|END_THINKING|><|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", " +
                                 "\"parameters\": {\"city\": \"Paris\"}}\n]<|END_ACTION|>");
        var call = Assert.Single(reply.Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}", "0"), (call.Name, call.Arguments, call.Id));
        Assert.Equal("It is sunny.", syntax.Parse("<|START_RESPONSE|>It is sunny.<|END_RESPONSE|>").Content);
    }

    [Fact]
    public void FunctionaryCallsAreNamedParts()
    {
        var v32 = SyntaxOf("meetkai-functionary-medium-v3.2.jinja")!;
        var reply = v32.Parse("all\nLet me check.>>>get_weather\n{\"city\": \"Paris\"}>>>get_time\n{\"zone\": \"CET\"}");
        Assert.Equal("Let me check.", reply.Content);
        Assert.Equal(["get_weather", "get_time"], reply.Calls.Select(c => c.Name));
        Assert.Equal("Hello!", v32.Parse("all\nHello!").Content);
        Assert.Empty(v32.Parse("all\nHello!").Calls);

        var v31 = SyntaxOf("meetkai-functionary-medium-v3.1.jinja")!;
        var call = Assert.Single(v31.Parse("<function=get_weather>{\"city\": \"Paris\"}</function>").Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void DeepSeekV31CallsNameThenArguments()
    {
        var call = Assert.Single(Marked("<｜tool▁calls▁begin｜>").Parse(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>").Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void GraniteAndPhi4MiniCallsFollowThePipeTag()
    {
        var syntax = Marked("<|tool_call|>");
        Assert.Equal("pipe-tagged", syntax.Name);
        var granite = syntax.Parse("<|tool_call|> [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_time\", \"arguments\": {}}]");
        Assert.Equal(["get_weather", "get_time"], granite.Calls.Select(c => c.Name));
        var phi = syntax.Parse("Sure.<|tool_call|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}<|/tool_call|>");
        Assert.Equal(("Sure.", "get_weather"), (phi.Content, Assert.Single(phi.Calls).Name));
    }

    [Fact]
    public void FireFunctionCallsFollowFunctools()
    {
        var syntax = Marked(" functools[");
        var call = Assert.Single(syntax.Parse(" functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]").Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
    }

    [Fact]
    public void LlamaCallsAreOneJsonObjectWithParameters()
    {
        var syntax = SyntaxOf("meta-llama-Llama-3.1-8B-Instruct.jinja")!;
        var call = Assert.Single(syntax.Parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}").Calls);
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
        Assert.Single(syntax.Parse("<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"zone\": \"CET\"}}").Calls);
        Assert.Empty(syntax.Parse("The weather is {fine}.").Calls);
    }

    private static readonly JsonElement CoderTools = JsonDocument.Parse("""
        [{"type": "function", "function": {"name": "plan", "parameters": {"type": "object", "properties": {
          "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}, "tags": {"type": "array"},
          "code": {"type": "string"}, "count": {"type": ["integer", "null"]}, "note": {}}}}}]
        """).RootElement.Clone();

    private static ChatTemplate Qwen3CoderTemplate() => ChatTemplate.Parse(
        TemplateTestData.Load("jinja2-more-templates.json").GetProperty("templates").GetProperty("vllm__tool_chat_template_qwen3coder.jinja").GetString()!, "qwen3coder");

    [Fact]
    public void Qwen3CoderCallsAreXmlParametersTypedByTheirSchema()
    {
        var syntax = ToolCallSyntax.Of(Qwen3CoderTemplate())!;
        Assert.Equal("qwen3-coder", syntax.Name);
        var reply = syntax.Parse("I will plan it.\n<tool_call>\n<function=plan>\n<parameter=city>\nSão Paulo\n</parameter>\n<parameter=days>\n3\n</parameter>\n" +
                                 "<parameter=metric>\nTrue\n</parameter>\n<parameter=tags>\n[\"a\", \"b\"]\n</parameter>\n<parameter=code>\n007\n</parameter>\n" +
                                 "<parameter=count>\nmany\n</parameter>\n<parameter=note>\n{\"x\": 1}\n</parameter>\n</function>\n</tool_call>", CoderTools);
        Assert.Equal("I will plan it.", reply.Content);
        var call = Assert.Single(reply.Calls);
        Assert.Equal("plan", call.Name);
        using var arguments = JsonDocument.Parse(call.Arguments);
        var a = arguments.RootElement;
        Assert.Equal("São Paulo", a.GetProperty("city").GetString());
        Assert.Equal(3, a.GetProperty("days").GetInt32());
        Assert.True(a.GetProperty("metric").GetBoolean());
        Assert.Equal(2, a.GetProperty("tags").GetArrayLength());
        Assert.Equal("007", a.GetProperty("code").GetString());           // a string parameter keeps its text
        Assert.Equal("many", a.GetProperty("count").GetString());         // not an integer: kept as written
        Assert.Equal(1, a.GetProperty("note").GetProperty("x").GetInt32()); // no type: read as JSON where it is
    }

    [Fact]
    public void Qwen3CoderCallsTheTemplateRendersReadBackAsTheyWere()
    {
        var template = Qwen3CoderTemplate();
        var sent = new ChatToolCall("call_1", "plan", "{\"city\": \"Oslo\", \"days\": 2, \"metric\": false, \"tags\": [\"x\"]}");
        var rendered = template.Render([ChatMessage.User("Plan"), new ChatMessage("assistant", "") { ToolCalls = [sent] }], false, extra: new Dictionary<string, object?> { ["tools"] = CoderTools });
        string turn = rendered.Text[rendered.Text.LastIndexOf("<|im_start|>assistant", StringComparison.Ordinal)..];
        var call = Assert.Single(ToolCallSyntax.Of(template)!.Parse(turn, CoderTools).Calls);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(sent.Arguments), JsonNode.Parse(call.Arguments)), call.Arguments);
        // Its arguments are not JSON, so a forced call cannot hold the model to their schema: refused by name.
        Assert.Contains("XML parameters", Assert.Throws<ArgumentException>(() => ToolCallSyntax.Of(template)!.Force(CoderTools)).Message);
    }
}
