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
        var wholeCall = Assert.Single(StreamedToolCalls.Of(message));

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Request(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var deltas = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        string Field(string name) => string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : ""));
        Assert.Equal("Let me see.", Field("reasoning_content"));
        Assert.Equal("Let me check the weather.", Field("content"));
        Assert.DoesNotContain("<", Field("content") + Field("reasoning_content"));
        int callAt = deltas.FindIndex(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _));
        var call = Assert.Single(StreamedToolCalls.Join(deltas));
        Assert.Equal(wholeCall, (call.Name, call.Arguments));
        // The text came before the call, the call's deltas before the finish, and the first delta names the role.
        Assert.True(deltas.FindLastIndex(d => d.GetProperty("delta").TryGetProperty("content", out var c) && c.GetString()!.Length > 0) < callAt);
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
        Assert.All(deltas[callAt..^1], d => Assert.True(d.GetProperty("delta").TryGetProperty("tool_calls", out _)));
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
            var call = Assert.Single(StreamedToolCalls.Join(deltas));
            Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), (call.Name, call.Arguments));
            Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
            Assert.Equal("assistant", deltas[0].GetProperty("delta").GetProperty("role").GetString());
        }
    }
}

/// <summary>A server over a GGUF that writes a call's JSON a few tokens at a time (<see cref="ToolCallingModel.ArgumentsInPiecesScript"/>).</summary>
public sealed class ArgumentsInPiecesFixture() : ScriptedModelFixture(ToolCallingModel.ArgumentsInPiecesScript);

/// <summary>
/// A call whose JSON the model writes in pieces streams as OpenAI streams one: a delta with its index, id, type and
/// name and no arguments yet, then fragments of its arguments as they are written, which join (by hand, or by the
/// OpenAI .NET SDK's streaming updates) to exactly the call the same request gets whole.
/// </summary>
public sealed class ToolCallArgumentStreamingTests(ArgumentsInPiecesFixture fixture) : IClassFixture<ArgumentsInPiecesFixture>
{
    private const string Weather = "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", " +
                                   "\"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"array\"}}}}}";

    private static JsonObject Request(bool stream, int n = 1) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }),
        ["max_tokens"] = 32,
        ["tools"] = new JsonArray(JsonNode.Parse(Weather)),
        ["stream"] = stream,
        ["n"] = n,
    };

    [Fact]
    public async Task TheNameGoesFirstThenTheArgumentsInFragmentsThatJoinToTheWholeReplysCall()
    {
        var ct = TestContext.Current.CancellationToken;
        using var whole = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(Request(stream: false).ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var message = JsonDocument.Parse(await whole.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0].GetProperty("message");
        var wholeCall = Assert.Single(StreamedToolCalls.Of(message));
        Assert.Equal(("get_weather", ToolCallingModel.PiecesArguments), wholeCall);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Request(stream: true, n: 2).ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var choices = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        for (int index = 0; index < 2; index++)
        {
            var deltas = choices.Where(c => c.GetProperty("index").GetInt32() == index).ToList();
            var call = Assert.Single(StreamedToolCalls.Join(deltas));
            Assert.Equal(wholeCall, (call.Name, call.Arguments));
            Assert.StartsWith("call_", call.Id);
            // The call's first delta names it before any of its arguments, which follow it in fragments (how many depends
            // on how the tokens batch into chunks), all before the choice's finish.
            var calls = deltas.Where(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _))
                .Select(d => d.GetProperty("delta").GetProperty("tool_calls")[0].GetProperty("function")).ToList();
            Assert.Equal("get_weather", calls[0].GetProperty("name").GetString());
            Assert.Equal("", calls[0].GetProperty("arguments").GetString());
            Assert.True(calls.Count >= 2, "no fragment of the arguments after the name");
            Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
            Assert.Equal("Let me check.", string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : "")));
        }
    }

    [Fact]
    public async Task ACallCutShortByMaxTokensAfterItBeganToStreamEndsWithLengthAsOpenAisDoes()
    {
        var ct = TestContext.Current.CancellationToken;
        // Four tokens: the text, the opening, the name and the start of the arguments; read whole, no call.
        var body = Request(stream: false);
        body["max_tokens"] = 4;
        var (choice, events) = await StreamedToolCalls.WholeThenStreamedAsync(fixture.Client, body, ct);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out _));
        Assert.DoesNotContain(events, e => e.TryGetProperty("error", out _));
        var deltas = events.SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        var call = Assert.Single(StreamedToolCalls.Join(deltas));
        Assert.Equal("get_weather", call.Name);
        Assert.All(deltas.SkipLast(1), d => Assert.Equal(JsonValueKind.Null, d.GetProperty("finish_reason").ValueKind));
        Assert.Equal("length", deltas[^1].GetProperty("finish_reason").GetString());
        Assert.DoesNotContain("<tool_call>", string.Concat(deltas.Select(d => d.GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : "")));
    }

    [Fact]
    public async Task TheOpenAiSdkJoinsTheStreamedCallIntoTheWholeReplysCall()
    {
        var ct = TestContext.Current.CancellationToken;
        string model = JsonDocument.Parse(await fixture.Client.GetStringAsync("/v1/models", ct)).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
        var chat = new OpenAI.Chat.ChatClient(model, new System.ClientModel.ApiKeyCredential("x"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Server.BaseAddress, "v1") });
        var options = new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 32 };
        options.Tools.Add(OpenAI.Chat.ChatTool.CreateFunctionTool("get_weather", "The weather in a city",
            BinaryData.FromString("{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}")));
        OpenAI.Chat.ChatMessage[] messages = [new OpenAI.Chat.UserChatMessage("Weather in Paris?")];

        OpenAI.Chat.ChatCompletion completion = await chat.CompleteChatAsync(messages, options, ct);
        var wholeCall = Assert.Single(completion.ToolCalls);

        // As OpenAI's own docs accumulate streamed calls: per index, the id and name where given, the arguments joined.
        var ids = new Dictionary<int, string>();
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        int fragments = 0;
        string? argumentsBesideName = null;
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options, ct))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                if (call.ToolCallId != null) ids[call.Index] = call.ToolCallId;
                if (call.FunctionName != null) (names[call.Index], argumentsBesideName) = (call.FunctionName, call.FunctionArgumentsUpdate?.ToString() ?? "");
                if (!arguments.TryGetValue(call.Index, out var text)) arguments[call.Index] = text = new StringBuilder();
                string fragment = call.FunctionArgumentsUpdate?.ToString() ?? "";
                if (fragment.Length > 0) fragments++;
                text.Append(fragment);
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal([0], arguments.Keys);
        Assert.Equal(wholeCall.FunctionName, names[0]);
        Assert.Equal(wholeCall.FunctionArguments.ToString(), arguments[0].ToString());
        Assert.StartsWith("call_", ids[0]);
        // The name came in an update of its own, the arguments after it.
        Assert.Equal("", argumentsBesideName);
        Assert.True(fragments >= 1);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
    }
}

/// <summary>A server over a GGUF whose call marker is a control token (<see cref="ToolCallingModel.MarkerTokenScript"/>).</summary>
public sealed class MarkerTokenFixture() : ScriptedModelFixture(ToolCallingModel.MarkerTokenScript, ToolCallingModel.MarkerTemplate, control: ["[TOOL_CALLS]"]);

/// <summary>
/// A call opened by a special token the reply's text does not show (Mistral's [TOOL_CALLS]) streams as well: the token
/// is read in its place among the reply's pieces, as the whole reading renders it, and never shows as text.
/// </summary>
public sealed class ControlTokenMarkerStreamingTests(MarkerTokenFixture fixture) : IClassFixture<MarkerTokenFixture>
{
    [Fact]
    public async Task ACallAfterAControlTokenMarkerStreamsAndJoinsToTheWholeReplysCall()
    {
        var ct = TestContext.Current.CancellationToken;
        JsonObject Request(bool stream) => new()
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }),
            ["max_tokens"] = 16,
            ["tools"] = new JsonArray(JsonNode.Parse("{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}")),
            ["stream"] = stream,
        };
        using var whole = await fixture.Client.PostAsync("/v1/chat/completions", new StringContent(Request(stream: false).ToJsonString(), Encoding.UTF8, "application/json"), ct);
        var message = JsonDocument.Parse(await whole.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("choices")[0].GetProperty("message");
        var wholeCall = Assert.Single(StreamedToolCalls.Of(message));
        Assert.Equal(("get_weather", "{\"city\": \"Paris\"}"), wholeCall);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Request(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await fixture.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var deltas = (await ServerSentEventsReader.ReadAllAsync(response, ct)).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        var call = Assert.Single(StreamedToolCalls.Join(deltas));
        Assert.Equal(wholeCall, (call.Name, call.Arguments));
        Assert.Equal(9, call.Id.Length);
        var first = deltas.First(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _)).GetProperty("delta").GetProperty("tool_calls")[0];
        Assert.Equal("", first.GetProperty("function").GetProperty("arguments").GetString());
        Assert.DoesNotContain(deltas, d => d.GetProperty("delta").TryGetProperty("content", out var c) && c.GetString()!.Contains("TOOL_CALLS"));
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
    }
}

/// <summary>A server over a GGUF that begins a call, then writes its arguments' JSON wrong (a bare word for a string).</summary>
public sealed class BrokenArgumentsFixture() : ScriptedModelFixture(["<tool_call>", "\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": ", "Paris}}", "\n</tool_call>"]);

/// <summary>
/// A call that began to stream and that the whole reply does not read as one (its JSON went wrong, the reply ended on
/// its own): the choice ends with a tool_call_unread error event, never a finish that would make what streamed a call.
/// </summary>
public sealed class BrokenStreamedCallTests(BrokenArgumentsFixture fixture) : IClassFixture<BrokenArgumentsFixture>
{
    [Fact]
    public async Task AStreamedCallTheWholeReplyDoesNotReadEndsItsChoiceWithAnError()
    {
        var ct = TestContext.Current.CancellationToken;
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }),
            ["max_tokens"] = 32,
            ["tools"] = new JsonArray(JsonNode.Parse("{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}")),
        };
        var (choice, events) = await StreamedToolCalls.WholeThenStreamedAsync(fixture.Client, body, ct);
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out _));
        var deltas = events.SkipLast(1).SelectMany(e => e.GetProperty("choices").EnumerateArray()).ToList();
        Assert.Equal("get_weather", Assert.Single(StreamedToolCalls.Join(deltas)).Name);
        Assert.All(deltas, d => Assert.Equal(JsonValueKind.Null, d.GetProperty("finish_reason").ValueKind));
        var error = events[^1].GetProperty("error");
        Assert.Equal("tool_call_unread", error.GetProperty("code").GetString());
        Assert.Contains("its JSON went wrong", error.GetProperty("message").GetString());
    }
}
