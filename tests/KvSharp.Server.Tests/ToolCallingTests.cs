using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>
/// A server over a <see cref="ToolCallingModel"/> GGUF writing <paramref name="script"/> (null: a tool call) with its
/// template, and <paramref name="secondChoice"/> as its second choice after a newline.
/// </summary>
public abstract class ScriptedModelFixture(string[]? script = null, string? template = null, string? secondChoice = null, string[]? control = null) : GeneratedModelServer
{
    protected override string WriteModel(string directory) => ToolCallingModel.Write(script, template, secondChoice, control);

    protected override EngineOptions Engine => new() { ContextLength = 1024, BlockSize = 16 };
}

/// <summary>A server over <see cref="ToolCallingModel"/>: its replies are tool calls.</summary>
public sealed class ToolCallingFixture : ScriptedModelFixture;

/// <summary>
/// Tool calling over HTTP, end to end on a GGUF that calls a tool: the tools reach the template, the reply comes back
/// as OpenAI's tool_calls with finish_reason "tool_calls" (whole or streamed), the next turn carries the call and the
/// tool's answer and reuses the first turn's KV from the prefix cache, and what the server cannot honour is refused
/// by name.
/// </summary>
public sealed class ToolCallingTests(ToolCallingFixture fixture) : IClassFixture<ToolCallingFixture>
{
    private const string Weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather in a city\", " +
                                   "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}";

    private static JsonObject Request(JsonArray messages, bool tools = true) => new()
    {
        ["messages"] = messages,
        ["max_tokens"] = 16,
        ["tools"] = tools ? new JsonArray(JsonNode.Parse(Weather)) : null,
    };

    private static JsonArray Question() => [new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }];

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string path, JsonObject body)
    {
        using var response = await fixture.Client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone());
    }

    private async Task<JsonElement> ChatAsync(JsonObject body)
    {
        var (status, json) = await PostAsync("/v1/chat/completions", body);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {json}");
        return json;
    }

    [Fact]
    public async Task AReplyThatCallsAToolComesBackAsToolCalls()
    {
        var choice = (await ChatAsync(Request(Question()))).GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        var call = Assert.Single(message.GetProperty("tool_calls").EnumerateArray());
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.GetProperty("id").GetString());
        Assert.Equal("function", call.GetProperty("type").GetString());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Paris\"}", call.GetProperty("function").GetProperty("arguments").GetString());
    }

    [Fact]
    public async Task WithoutToolsTheSameReplyIsText()
    {
        var choice = (await ChatAsync(Request(Question(), tools: false))).GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("<tool_call>" + ToolCallingModel.CallText + "</tool_call>", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out _));
        // tool_choice "none": the tools are not rendered and the reply is not read for calls.
        var none = Request(Question());
        none["tool_choice"] = "none";
        Assert.Equal("stop", (await ChatAsync(none)).GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task TheToolsReachTheTemplate()
    {
        var body = new JsonObject { ["messages"] = Question(), ["tools"] = new JsonArray(JsonNode.Parse(Weather)) };
        var (status, json) = await PostAsync("/apply-template", body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("<|im_start|>system\nYou may call these functions:<tools>{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"",
            json.GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task AStreamedReplyCarriesItsCallsThenToolCallsAsItsFinish()
    {
        var body = Request(Question());
        body["stream"] = true;
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await ServerSentEventsReader.ReadAllAsync(response, TestContext.Current.CancellationToken);
        var deltas = events.Where(e => e.GetProperty("choices").GetArrayLength() > 0).Select(e => e.GetProperty("choices")[0]).ToList();
        Assert.Equal("assistant", deltas[0].GetProperty("delta").GetProperty("role").GetString());
        var call = Assert.Single(StreamedToolCalls.Join(deltas));
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(4, events[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task TheNextTurnCarriesTheCallAndTheAnswerAndReusesTheFirstTurnsCache()
    {
        var first = (await ChatAsync(Request(Question()))).GetProperty("choices")[0].GetProperty("message");
        var call = first.GetProperty("tool_calls")[0];
        var messages = Question();
        messages.Add(JsonNode.Parse(first.GetRawText()));
        messages.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = call.GetProperty("id").GetString(), ["content"] = "{\"temperature\": 18}" });
        var second = await ChatAsync(Request(messages));
        // The first turn's prompt and the reply the model wrote render to the same tokens again: all of it is cached
        // but the tokens the model never ran (its last one), up to the block the reply ended in.
        var usage = second.GetProperty("usage");
        int cached = usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        var firstTurn = await PostAsync("/apply-template", new JsonObject { ["messages"] = Question(), ["tools"] = new JsonArray(JsonNode.Parse(Weather)) });
        int firstPrompt = fixture.Model.Tokenizer.Encode(firstTurn.Body.GetProperty("prompt").GetString()!, addSpecial: true, parseSpecial: true).Length;
        Assert.True(cached >= firstPrompt, $"{cached} cached tokens; the first turn's prompt alone is {firstPrompt}");
        Assert.Equal("tool_calls", second.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task JsonModeWithToolsIsRefusedByName()
    {
        var body = Request(Question());
        body["response_format"] = new JsonObject { ["type"] = "json_object" };
        var (status, json) = await PostAsync("/v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("response_format", json.GetProperty("error").GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("{\"type\": \"function\", \"function\": {\"name\": \"get_time\"}}", "invalid_value")]
    [InlineData("{\"type\": \"function\"}", "invalid_value")]
    [InlineData("\"sometimes\"", "invalid_value")]
    public async Task AnUnknownToolChoiceIsRefusedByName(string choice, string code)
    {
        var body = Request(Question());
        body["tool_choice"] = JsonNode.Parse(choice);
        var (status, json) = await PostAsync("/v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(code, json.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("tool_choice", json.GetProperty("error").GetProperty("param").GetString());
    }
}
