#pragma warning disable OPENAI001 // the SDK's Responses client is marked experimental
using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Responses;

namespace KvSharp.Server.Tests;

/// <summary>
/// /v1/responses with function tools, on a GGUF that thinks, says what it will do and calls a tool: the reply comes as
/// a reasoning item, a message and a function_call item, whole (read by the official SDK) and streamed (each item
/// opened, filled and closed in order); the tool's output continues the conversation by previous_response_id, rendered
/// as the same conversation sent to chat completions is, and its first turn's tokens come from the cache.
/// </summary>
public sealed class ResponsesToolTests(ThinkThenCallFixture fixture) : IClassFixture<ThinkThenCallFixture>
{
    private const string Parameters = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}";
    private const string Question = "Weather in Paris?";

    private ResponsesClient Sdk() => new(new ApiKeyCredential("x"), new ResponsesClientOptions { Endpoint = new Uri(fixture.Server.BaseAddress, "v1") });

    private static JsonArray Tools() => [new JsonObject { ["type"] = "function", ["name"] = "get_weather", ["description"] = "The weather in a city", ["parameters"] = JsonNode.Parse(Parameters) }];

    private async Task<JsonElement> PostAsync(string path, JsonObject body)
    {
        using var response = await fixture.Client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.Clone();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {json}");
        return json;
    }

    /// <summary>Waits (a bounded while) until every request has let go of the server: a response is read before its handler ends.</summary>
    private async Task IdleAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (fixture.Server.Service.InFlight != 0 || fixture.Server.Engine.Pool.UsedBlocks != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "requests still in flight");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task TheReplyComesAsReasoningAMessageAndAFunctionCallAndTheToolsOutputContinuesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var options = new CreateResponseOptions(fixture.Server.Service.ModelId, [ResponseItem.CreateUserMessageItem(Question)]) { MaxOutputTokenCount = 32 };
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(Parameters), null, "The weather in a city"));
        ResponseResult first = await Sdk().CreateResponseAsync(options, ct);
        Assert.Equal(ResponseStatus.Completed, first.Status);
        Assert.Equal([ResponseItemKind.Reasoning, ResponseItemKind.Message, ResponseItemKind.FunctionCall], first.OutputItems.Select(i => i.Kind));
        Assert.Equal("Let me check the weather.", first.GetOutputText());
        var call = first.OutputItems.OfType<FunctionCallResponseItem>().Single();
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("{\"city\": \"Paris\"}", call.FunctionArguments.ToString());
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.CallId);
        Assert.True(first.Usage.OutputTokenDetails.ReasoningTokenCount > 0);

        // The tool's output, continuing the stored response.
        var next = new CreateResponseOptions(fixture.Server.Service.ModelId, [ResponseItem.CreateFunctionCallOutputItem(call.CallId, "{\"temperature\": 18}")])
        {
            PreviousResponseId = first.Id, MaxOutputTokenCount = 32,
        };
        next.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(Parameters), null, "The weather in a city"));
        ResponseResult second = await Sdk().CreateResponseAsync(next, ct);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount >= first.Usage.InputTokenCount,
            $"{second.Usage.InputTokenDetails.CachedTokenCount} cached; the first turn's input alone is {first.Usage.InputTokenCount}");
        // The same conversation sent to chat completions renders to as many tokens.
        var chat = await PostAsync("/v1/chat/completions", new JsonObject
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = Question },
                new JsonObject
                {
                    ["role"] = "assistant", ["content"] = "Let me check the weather.", ["reasoning_content"] = "Let me see.",
                    ["tool_calls"] = new JsonArray(new JsonObject { ["id"] = call.CallId, ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\": \"Paris\"}" } }),
                },
                new JsonObject { ["role"] = "tool", ["tool_call_id"] = call.CallId, ["content"] = "{\"temperature\": 18}" }),
            ["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "get_weather", ["description"] = "The weather in a city", ["parameters"] = JsonNode.Parse(Parameters) } }),
            ["max_tokens"] = 1,
        });
        Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), second.Usage.InputTokenCount);

        // A client that keeps the conversation itself sends the first reply's output items back: the same turn.
        var stored = (await fixture.Client.GetFromJsonAsync<JsonElement>($"/v1/responses/{first.Id}", ct)).GetProperty("output");
        var input = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Question });
        foreach (var item in stored.EnumerateArray()) input.Add(JsonNode.Parse(item.GetRawText()));
        input.Add(new JsonObject { ["type"] = "function_call_output", ["call_id"] = call.CallId, ["output"] = "{\"temperature\": 18}" });
        var stateless = await PostAsync("/v1/responses", new JsonObject { ["input"] = input, ["tools"] = Tools(), ["max_output_tokens"] = 1 });
        Assert.Equal(second.Usage.InputTokenCount, stateless.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        await IdleAsync();
    }

    [Fact]
    public async Task AStreamOpensFillsAndClosesEachItemInOrder()
    {
        var ct = TestContext.Current.CancellationToken;
        var (_, events) = await ResponseEventsReader.ReadAsync(fixture.Client, new JsonObject { ["input"] = Question, ["tools"] = Tools(), ["max_output_tokens"] = 32 }, ct);
        string Type(JsonElement e) => e.GetProperty("type").GetString()!;
        string Joined(string type, string field) => string.Concat(events.Where(e => Type(e) == type).Select(e => e.GetProperty(field).GetString()));
        Assert.Equal("Let me see.", Joined("response.reasoning_text.delta", "delta"));
        Assert.Equal("Let me check the weather.", Joined("response.output_text.delta", "delta"));
        Assert.Equal("{\"city\": \"Paris\"}", Joined("response.function_call_arguments.done", "arguments"));
        // Three items, each added then done before the next is added, at output indexes 0, 1, 2.
        var lifecycle = events.Where(e => Type(e) is "response.output_item.added" or "response.output_item.done")
            .Select(e => (Type(e), e.GetProperty("output_index").GetInt32(), e.GetProperty("item").GetProperty("type").GetString())).ToArray();
        Assert.Equal([
            ("response.output_item.added", 0, "reasoning"), ("response.output_item.done", 0, "reasoning"),
            ("response.output_item.added", 1, "message"), ("response.output_item.done", 1, "message"),
            ("response.output_item.added", 2, "function_call"), ("response.output_item.done", 2, "function_call")], lifecycle);
        var final = events[^1];
        Assert.Equal("response.completed", Type(final));
        var items = final.GetProperty("response").GetProperty("output").EnumerateArray().ToArray();
        Assert.Equal("get_weather", items[2].GetProperty("name").GetString());
        Assert.Equal(items[2].GetProperty("call_id").GetString(), events.First(e => Type(e) == "response.output_item.added" && e.GetProperty("output_index").GetInt32() == 2)
            .GetProperty("item").GetProperty("call_id").GetString());
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        await IdleAsync();
    }
}

/// <summary>
/// A function call that streamed and that the whole reply does not read as one (its JSON went wrong): the Responses
/// stream ends with response.failed, naming the error, never with response.completed; nothing is stored.
/// </summary>
public sealed class ResponsesBrokenCallTests(BrokenArgumentsFixture fixture) : IClassFixture<BrokenArgumentsFixture>
{
    [Fact]
    public async Task AStreamedCallTheWholeReplyDoesNotReadEndsTheResponseAsFailed()
    {
        var ct = TestContext.Current.CancellationToken;
        var tools = new JsonArray(new JsonObject { ["type"] = "function", ["name"] = "get_weather", ["parameters"] = new JsonObject { ["type"] = "object" } });
        var (_, events) = await ResponseEventsReader.ReadAsync(fixture.Client, new JsonObject { ["input"] = "Weather in Paris?", ["tools"] = tools, ["max_output_tokens"] = 32 }, ct);
        string Type(JsonElement e) => e.GetProperty("type").GetString()!;
        Assert.Contains(events, e => Type(e) == "response.output_item.added" && e.GetProperty("item").GetProperty("type").GetString() == "function_call");
        var last = events[^1];
        Assert.Equal("response.failed", Type(last));
        var response = last.GetProperty("response");
        Assert.Equal("failed", response.GetProperty("status").GetString());
        Assert.Equal("tool_call_unread", response.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain(events, e => Type(e) is "response.completed" or "response.incomplete");
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        using var stored = await fixture.Client.GetAsync($"/v1/responses/{response.GetProperty("id").GetString()}", ct);
        Assert.Equal(HttpStatusCode.NotFound, stored.StatusCode);
    }
}
