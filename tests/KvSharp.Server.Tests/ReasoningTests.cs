using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a GGUF whose weights think aloud in &lt;think&gt; tags, then answer (<see cref="ToolCallingModel.ThinkingScript"/>).</summary>
public sealed class ThinkingModelFixture() : ScriptedModelFixture(ToolCallingModel.ThinkingScript, ToolCallingModel.ThinkingTemplate);

/// <summary>
/// A thinking model's reply: its think block comes back as reasoning_content and the rest as content, whole or
/// streamed (as llama-server's reasoning_format "deepseek" does); reasoning_format "none" leaves it in the content.
/// </summary>
public sealed class ReasoningTests(ThinkingModelFixture fixture) : IClassFixture<ThinkingModelFixture>
{
    private static JsonObject Request(string? format = null) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather?" }),
        ["max_tokens"] = 16,
        ["reasoning_format"] = format,
    };

    private async Task<(HttpStatusCode, JsonElement)> PostAsync(JsonObject body)
    {
        using var response = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone());
    }

    [Fact]
    public async Task TheThinkingComesApartFromTheAnswer()
    {
        var (status, json) = await PostAsync(Request());
        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("Let me see.", message.GetProperty("reasoning_content").GetString());
        Assert.Equal("It is sunny.", message.GetProperty("content").GetString());

        (status, json) = await PostAsync(Request("none"));
        message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("<think>Let me see.</think>\n\nIt is sunny.", message.GetProperty("content").GetString());
        Assert.False(message.TryGetProperty("reasoning_content", out _));

        (status, json) = await PostAsync(Request("sometimes"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("reasoning_format", json.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task StreamedDeltasCarryTheThinkingThenTheAnswer()
    {
        var body = Request();
        body["stream"] = true;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var events = await ServerSentEventsReader.ReadAllAsync(response, TestContext.Current.CancellationToken);
        var deltas = events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).Select(c => c.GetProperty("delta")).ToList();
        string Field(string name) => string.Concat(deltas.Select(d => d.TryGetProperty(name, out var v) ? v.GetString() : ""));
        Assert.Equal("Let me see.", Field("reasoning_content"));
        Assert.Equal("It is sunny.", Field("content"));
    }
}
