using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a GGUF that thinks, says what it will do, then calls a tool (<see cref="ToolCallingModel.ThinkThenCallScript"/>).</summary>
public sealed class ThinkThenCallFixture() : ScriptedModelFixture(ToolCallingModel.ThinkThenCallScript, ToolCallingModel.ThinkingToolTemplate);

/// <summary>
/// A streamed reply with tools: its reasoning and its text before the call arrive as deltas while it is generated,
/// the call's syntax never shows as text, and the deltas add up to what the same request gets whole: the same
/// reasoning, the same text, the same call, then finish_reason "tool_calls".
/// </summary>
public sealed class ToolCallStreamingTests(ThinkThenCallFixture fixture) : IClassFixture<ThinkThenCallFixture>
{
    private static JsonObject Request(bool stream) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }),
        ["max_tokens"] = 32,
        ["tools"] = new JsonArray(JsonNode.Parse("{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", " +
                                                 "\"properties\": {\"city\": {\"type\": \"string\"}}}}}")),
        ["stream"] = stream,
    };

    [Fact]
    public async Task TheStreamedDeltasAddUpToTheWholeReply()
    {
        var ct = TestContext.Current.CancellationToken;
        using var whole = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(Request(stream: false).ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var choice = JsonDocument.Parse(await whole.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0];
        var message = choice.GetProperty("message");
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal("Let me see.", message.GetProperty("reasoning_content").GetString());
        Assert.Equal("Let me check the weather.", message.GetProperty("content").GetString());
        var wholeCall = Assert.Single(message.GetProperty("tool_calls").EnumerateArray()).GetProperty("function");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Request(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var deltas = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        string Field(string name) => string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : ""));
        Assert.Equal("Let me see.", Field("reasoning_content"));
        Assert.Equal("Let me check the weather.", Field("content"));
        Assert.DoesNotContain("<", Field("content") + Field("reasoning_content"));
        int callAt = deltas.FindIndex(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _));
        var call = Assert.Single(deltas[callAt].GetProperty("delta").GetProperty("tool_calls").EnumerateArray());
        Assert.Equal(0, call.GetProperty("index").GetInt32());
        Assert.Equal(wholeCall.GetProperty("name").GetString(), call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal(wholeCall.GetProperty("arguments").GetString(), call.GetProperty("function").GetProperty("arguments").GetString());
        // The text came before the call, the call before the finish, and the first delta names the role.
        Assert.True(deltas.FindLastIndex(d => d.GetProperty("delta").TryGetProperty("content", out var c) && c.GetString()!.Length > 0) < callAt);
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(callAt + 1, deltas.Count - 1);
        Assert.Equal("assistant", deltas[0].GetProperty("delta").GetProperty("role").GetString());
    }

    [Fact]
    public async Task EachChoiceStreamsItsOwnReply()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = Request(stream: true);
        body["n"] = 2;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var choices = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        for (int index = 0; index < 2; index++)
        {
            var deltas = choices.Where(c => c.GetProperty("index").GetInt32() == index).ToList();
            string Field(string name) => string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : ""));
            Assert.Equal("Let me see.", Field("reasoning_content"));
            Assert.Equal("Let me check the weather.", Field("content"));
            Assert.Single(deltas, d => d.GetProperty("delta").TryGetProperty("tool_calls", out _));
            Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
            Assert.Equal("assistant", deltas[0].GetProperty("delta").GetProperty("role").GetString());
        }
    }
}
