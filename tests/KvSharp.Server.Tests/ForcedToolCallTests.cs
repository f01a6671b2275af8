using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a model that answers in text, its second choice after a newline a get_weather call.</summary>
public sealed class TextReplyFixture() : ScriptedModelFixture(["It is sunny."], secondChoice: ToolCallingModel.SecondChoiceCall);

/// <summary>
/// tool_choice "required" and a named function, end to end over HTTP on a GGUF whose model would answer in text: the
/// reply is begun in the template's call syntax and held to the tools' schemas, so it is the call the model likes best
/// among those allowed (its second choice, not its text), or the named function's; streamed too; what cannot be held
/// to is refused by name.
/// </summary>
public sealed class ForcedToolCallTests(TextReplyFixture fixture) : IClassFixture<TextReplyFixture>
{
    private const string Weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": " +
                                   "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}";
    private const string Time = "{\"type\": \"function\", \"function\": {\"name\": \"get_time\", \"parameters\": " +
                                "{\"type\": \"object\", \"properties\": {\"zone\": {\"enum\": [\"CET\", \"UTC\"]}}, \"required\": [\"zone\"]}}}";

    private static JsonObject Request(string? choice, params string[] tools) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Oslo?" }),
        // Room for what a named call is spelled with here: among tokens this model finds equally likely, the lowest id.
        ["max_tokens"] = 400,
        ["tools"] = new JsonArray([.. tools.Select(t => JsonNode.Parse(t))]),
        ["tool_choice"] = choice == null ? null : JsonNode.Parse(choice),
    };

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(JsonObject body)
    {
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    private async Task<JsonElement> ChoiceAsync(JsonObject body)
    {
        var (status, text) = await PostAsync(body);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].Clone();
    }

    [Fact]
    public async Task RequiredTurnsATextReplyIntoTheCallTheModelLikesBest()
    {
        var free = await ChoiceAsync(Request(null, Weather, Time));
        Assert.Equal("It is sunny.", free.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", free.GetProperty("finish_reason").GetString());

        var forced = await ChoiceAsync(Request("\"required\"", Weather, Time));
        Assert.Equal("tool_calls", forced.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, forced.GetProperty("message").GetProperty("content").ValueKind);
        var function = Assert.Single(forced.GetProperty("message").GetProperty("tool_calls").EnumerateArray()).GetProperty("function");
        Assert.Equal("get_weather", function.GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Oslo\"}", function.GetProperty("arguments").GetString());
    }

    [Fact]
    public async Task ANamedFunctionIsTheOneCalledWithArgumentsItsSchemaAllows()
    {
        var choice = await ChoiceAsync(Request("{\"type\": \"function\", \"function\": {\"name\": \"get_time\"}}", Weather, Time));
        Assert.True(choice.GetProperty("finish_reason").GetString() == "tool_calls", choice.ToString());
        var function = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray()).GetProperty("function");
        Assert.Equal("get_time", function.GetProperty("name").GetString());
        using var arguments = JsonDocument.Parse(function.GetProperty("arguments").GetString()!);
        var zone = Assert.Single(arguments.RootElement.EnumerateObject());
        Assert.Equal("zone", zone.Name);
        Assert.Contains(zone.Value.GetString(), new[] { "CET", "UTC" });
    }

    [Fact]
    public async Task AStreamedForcedCallEndsWithItsCall()
    {
        var body = Request("\"required\"", Weather);
        body["stream"] = true;
        var (status, text) = await PostAsync(body);
        Assert.Equal(HttpStatusCode.OK, status);
        var chunks = text.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement.GetProperty("choices")[0].Clone()).ToList();
        // The call streams from the opening in the prompt: its name, then its arguments, held to the schema.
        var call = Assert.Single(StreamedToolCalls.Join(chunks));
        Assert.Equal("get_weather", call.Name);
        Assert.Equal(JsonValueKind.String, JsonDocument.Parse(call.Arguments).RootElement.GetProperty("city").ValueKind);
        Assert.Equal("tool_calls", chunks[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task ASchemaKeywordAForcedCallCannotHoldToIsRefusedNamingTheTool()
    {
        const string days = "{\"type\": \"function\", \"function\": {\"name\": \"forecast\", \"parameters\": " +
                            "{\"type\": \"object\", \"properties\": {\"days\": {\"type\": \"array\", \"uniqueItems\": true}}}}}";
        var (status, text) = await PostAsync(Request("\"required\"", Weather, days));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("tool_choice", error.GetProperty("param").GetString());
        Assert.Equal("unsupported_parameter", error.GetProperty("code").GetString());
        Assert.Contains("tools[1].function.parameters.properties.days.uniqueItems", error.GetProperty("message").GetString());
        // Without a forced call the same tools are fine: the model is not held to them.
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(Request("\"auto\"", Weather, days))).Status);
    }

    [Fact]
    public async Task RequiredWithoutAnyToolIsRefused()
    {
        var (status, text) = await PostAsync(Request("\"required\""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("tool_choice", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("param").GetString());
    }
}
