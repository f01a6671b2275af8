using System.Text.Json;
using System.Text.Json.Nodes;

namespace KvSharp.Server.Tests;

/// <summary>A server over a GGUF that makes two calls in one reply (<see cref="ToolCallingModel.TwoCallsScript"/>).</summary>
public sealed class TwoCallsFixture() : ScriptedModelFixture(ToolCallingModel.TwoCallsScript);

/// <summary>
/// parallel_tool_calls: a reply's calls all come back by default or with true; with false only its first does, whole
/// or streamed (no delta of a second call goes out), as vLLM drops the rest.
/// </summary>
public sealed class ParallelToolCallsTests(TwoCallsFixture fixture) : IClassFixture<TwoCallsFixture>
{
    private static JsonObject Request(bool? parallel) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris and Oslo?" }),
        ["max_tokens"] = 32,
        ["tools"] = new JsonArray(JsonNode.Parse("{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", " +
                                                 "\"properties\": {\"city\": {\"type\": \"string\"}}}}}")),
        ["parallel_tool_calls"] = parallel,
    };

    [Theory]
    [InlineData(null)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task FalseKeepsTheFirstCallWholeAndStreamed(bool? parallel)
    {
        var ct = TestContext.Current.CancellationToken;
        var (choice, events) = await StreamedToolCalls.WholeThenStreamedAsync(fixture.Client, Request(parallel), ct);
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var calls = StreamedToolCalls.Of(choice.GetProperty("message"));
        (string, string)[] expected = parallel == false
            ? [("get_weather", "{\"city\": \"Paris\"}")]
            : [("get_weather", "{\"city\": \"Paris\"}"), ("get_weather", "{\"city\": \"Oslo\"}")];
        Assert.Equal(expected, calls);

        var deltas = events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        Assert.Equal(expected, StreamedToolCalls.Join(deltas).Select(c => (c.Name, c.Arguments)));
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
        if (parallel == false)
            Assert.DoesNotContain(deltas, d => d.GetProperty("delta").TryGetProperty("tool_calls", out var t)
                && t.EnumerateArray().Any(c => c.GetProperty("index").GetInt32() > 0));
    }
}
