using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a GGUF whose weights answer in Harmony messages (<see cref="HarmonyModel.Answer"/>).</summary>
public sealed class HarmonyAnswerFixture() : ScriptedModelFixture(HarmonyModel.Answer, HarmonyModel.Template);

/// <summary>The same, calling a tool (<see cref="HarmonyModel.Call"/>).</summary>
public sealed class HarmonyCallFixture() : ScriptedModelFixture(HarmonyModel.Call, HarmonyModel.Template);

/// <summary>
/// A gpt-oss-style reply over HTTP: its analysis comes back as reasoning_content and its final message as content,
/// whole or streamed, whatever reasoning_format says, with no Harmony marker in either; a message to functions.NAME
/// comes back as a tool call; an assistant turn sent back with reasoning_content reaches the template as thinking.
/// </summary>
public sealed class HarmonyReplyTests(HarmonyAnswerFixture answer, HarmonyCallFixture call) : IClassFixture<HarmonyAnswerFixture>, IClassFixture<HarmonyCallFixture>
{
    private const string Weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather in a city\", " +
                                   "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}";

    private static JsonObject Request(string? format = null, bool tools = false) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather?" }),
        ["max_tokens"] = 16,
        ["reasoning_format"] = format,
        ["tools"] = tools ? new JsonArray(JsonNode.Parse(Weather)) : null,
    };

    private static async Task<(HttpStatusCode, JsonElement)> PostAsync(HttpClient client, string path, JsonObject body)
    {
        using var response = await client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("none")]
    public async Task TheAnalysisIsReasoningAndTheFinalMessageTheContent(string? format)
    {
        var (status, json) = await PostAsync(answer.Client, "/v1/chat/completions", Request(format));
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("Let me see.", choice.GetProperty("message").GetProperty("reasoning_content").GetString());
        Assert.Equal("It is sunny.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task StreamedDeltasCarryTheAnalysisThenTheAnswerWithoutMarkers()
    {
        var body = Request();
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await answer.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var events = await ServerSentEventsReader.ReadAllAsync(response, TestContext.Current.CancellationToken);
        var deltas = events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).Select(c => c.GetProperty("delta")).ToList();
        string Field(string name) => string.Concat(deltas.Select(d => d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : ""));
        Assert.Equal("Let me see.", Field("reasoning_content"));
        Assert.Equal("It is sunny.", Field("content"));
        Assert.DoesNotContain(deltas, d => d.GetRawText().Contains("<|", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AMessageToAFunctionIsAToolCall()
    {
        var (status, json) = await PostAsync(call.Client, "/v1/chat/completions", Request(tools: true));
        Assert.True(status == HttpStatusCode.OK, json.ToString());
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        Assert.Equal("Need the weather.", message.GetProperty("reasoning_content").GetString());
        var toolCall = Assert.Single(message.GetProperty("tool_calls").EnumerateArray());
        Assert.Equal("get_weather", toolCall.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("{\"city\": \"Paris\"}", toolCall.GetProperty("function").GetProperty("arguments").GetString());
    }

    [Fact]
    public async Task ReasoningSentBackReachesTheTemplateAsThinking()
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Weather?" },
                new JsonObject { ["role"] = "assistant", ["content"] = "It is sunny.", ["reasoning_content"] = "Let me see." },
                new JsonObject { ["role"] = "user", ["content"] = "Thanks" }),
        };
        var (status, json) = await PostAsync(answer.Client, "/apply-template", body);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<|start|>assistant<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant<|channel|>final<|message|>It is sunny.<|end|>",
            json.GetProperty("prompt").GetString());
    }
}
