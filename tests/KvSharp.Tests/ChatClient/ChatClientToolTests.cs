using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Server.Tests;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// KvSharpChatClient with tools, on a GGUF whose weights write a Hermes tool call (<see cref="ToolCallingModel"/>):
/// the reply comes back as FunctionCallContent with finish reason ToolCalls (whole or streamed), the function's result
/// goes back as a tool turn that reuses the conversation's cache, Microsoft.Extensions.AI's function invocation runs
/// the function, and what the client cannot honour is refused by name.
/// </summary>
public sealed class ChatClientToolTests : IDisposable
{
    private readonly string _path = ToolCallingModel.Write();
    private readonly LlmModel _model;
    private readonly KvSharpChatClient _client;
    private readonly List<string> _cities = [];
    private readonly AIFunction _weather;

    public ChatClientToolTests()
    {
        _model = LlmModel.Load(_path, new ModelLoadOptions { Threads = 2 });
        _client = new KvSharpChatClient(_model, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 1024 } });
        _weather = AIFunctionFactory.Create((string city) =>
        {
            _cities.Add(city);
            return $"18 degrees in {city}";
        }, "get_weather", "The weather in a city");
    }

    public void Dispose()
    {
        _client.Dispose();
        _model.Dispose();
        File.Delete(_path);
    }

    private ChatOptions Options(string? conversation = null) => new() { Tools = [_weather], ConversationId = conversation, MaxOutputTokens = 16 };

    private static AIChatMessage User(string text) => new(ChatRole.User, text);

    [Fact]
    public async Task AReplyThatCallsIsFunctionCallContentAndItsResultComesBackFromTheCache()
    {
        var conversation = _client.StartConversation();
        var first = await _client.GetResponseAsync([User("Weather in Paris?")], Options(conversation.Id), TestContext.Current.CancellationToken);
        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.IsType<FunctionCallContent>(Assert.Single(first.Messages.Single().Contents));
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", ((JsonElement)call.Arguments!["city"]!).GetString());

        var result = new AIChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, "18 degrees")]);
        var second = await _client.GetResponseAsync([result], Options(conversation.Id), TestContext.Current.CancellationToken);
        // The first turn, with the call as the model wrote it, comes from the cache: only the tool turn is computed.
        Assert.True(second.Usage!.CachedInputTokenCount >= first.Usage!.InputTokenCount + first.Usage.OutputTokenCount - 1,
            $"{second.Usage.CachedInputTokenCount} cached of {second.Usage.InputTokenCount}; the first turn was {first.Usage.InputTokenCount} + {first.Usage.OutputTokenCount}");
    }

    [Fact]
    public async Task AStreamedReplyWithToolsEndsWithItsCalls()
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in _client.GetStreamingResponseAsync([User("Weather in Paris?")], Options(), TestContext.Current.CancellationToken)) updates.Add(u);
        var call = Assert.Single(updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_weather", call.Name);
        Assert.DoesNotContain(updates.SelectMany(u => u.Contents).OfType<TextContent>(), t => t.Text.Contains("tool_call"));
        Assert.Equal(ChatFinishReason.ToolCalls, updates[^1].FinishReason);
    }

    [Fact]
    public async Task FunctionInvocationRunsTheFunctionTheModelCalls()
    {
        using var invoking = new FunctionInvokingChatClient(_client) { MaximumIterationsPerRequest = 2 };
        var conversation = _client.StartConversation();
        await invoking.GetResponseAsync([User("Weather in Paris?")], Options(conversation.Id), TestContext.Current.CancellationToken);
        Assert.NotEmpty(_cities);
        Assert.All(_cities, c => Assert.Equal("Paris", c));
    }

    [Fact]
    public async Task ParallelCallsResultsInOneMessageAreATurnEach()
    {
        var calls = new AIChatMessage(ChatRole.Assistant, [
            new FunctionCallContent("call_a", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" }),
            new FunctionCallContent("call_b", "get_weather", new Dictionary<string, object?> { ["city"] = "Rome" })]);
        async Task<long> PromptTokens(params AIContent[] results)
        {
            var response = await _client.GetResponseAsync([User("Weather in Paris and Rome?"), calls, new AIChatMessage(ChatRole.Tool, results)], Options(),
                TestContext.Current.CancellationToken);
            return response.Usage!.InputTokenCount!.Value;
        }
        long one = await PromptTokens(new FunctionResultContent("call_a", "18 degrees"));
        long two = await PromptTokens(new FunctionResultContent("call_a", "18 degrees"), new FunctionResultContent("call_b", "18 degrees"));
        // The second tool turn: its header, its text and its end ("<|im_start|>tool\n18 degrees<|im_end|>\n").
        long turn = _model.Tokenizer.Encode("<|im_start|>tool\n18 degrees<|im_end|>\n", addSpecial: false, parseSpecial: true).Length;
        Assert.Equal(one + turn, two);
    }

    [Fact]
    public async Task WithoutToolsTheReplyIsText()
    {
        var plain = await _client.GetResponseAsync([User("Weather in Paris?")], new ChatOptions { MaxOutputTokens = 16 }, TestContext.Current.CancellationToken);
        Assert.Equal("<tool_call>" + ToolCallingModel.CallText + "</tool_call>", plain.Text);
        Assert.Equal(ChatFinishReason.Stop, plain.FinishReason);
    }

    [Fact]
    public async Task ARequiredCallIsTheCallTheModelLikesBestAmongThoseAllowed()
    {
        // This model answers in text; its second choice after a newline is a get_weather call for Oslo.
        string path = ToolCallingModel.Write(["It is sunny."], secondChoice: ToolCallingModel.SecondChoiceCall);
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            // Two tools' schemas in the prompt, then a call whose every gap is a newline and twenty tabs: past the file's 1,024.
            using var client = new KvSharpChatClient(model, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 2048 } });
            var time = AIFunctionFactory.Create((TimeZoneName zone) => zone.ToString(), "get_time", "The time in a zone");
            // Room for what a named call is spelled with here: among tokens this model finds equally likely, the lowest id
            // (a newline and twenty tabs between every two tokens, names in \u escapes).
            var options = new ChatOptions { Tools = [_weather, time], MaxOutputTokens = 1200 };
            Assert.Equal("It is sunny.", (await client.GetResponseAsync([User("Weather in Oslo?")], options, TestContext.Current.CancellationToken)).Text);

            options.ToolMode = ChatToolMode.RequireAny;
            var any = await client.GetResponseAsync([User("Weather in Oslo?")], options, TestContext.Current.CancellationToken);
            Assert.Equal(ChatFinishReason.ToolCalls, any.FinishReason);
            var call = Assert.IsType<FunctionCallContent>(Assert.Single(any.Messages.Single().Contents));
            Assert.Equal(("get_weather", "Oslo"), (call.Name, ((JsonElement)call.Arguments!["city"]!).GetString()));

            // A named function: the model's favourite is not allowed, so it writes the one it must, as its schema allows.
            options.ToolMode = ChatToolMode.RequireSpecific("get_time");
            var updates = new List<ChatResponseUpdate>();
            await foreach (var u in client.GetStreamingResponseAsync([User("Weather in Oslo?")], options, TestContext.Current.CancellationToken)) updates.Add(u);
            var timeCall = Assert.Single(updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>());
            Assert.Equal("get_time", timeCall.Name);
            Assert.Contains(((JsonElement)timeCall.Arguments!["zone"]!).GetString(), Enum.GetNames<TimeZoneName>());
            Assert.Equal(ChatFinishReason.ToolCalls, updates[^1].FinishReason);

            // A function that is not among the tools is the caller's mistake, named.
            options.ToolMode = ChatToolMode.RequireSpecific("get_tide");
            var e = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([User("Weather in Oslo?")], options, TestContext.Current.CancellationToken));
            Assert.Contains("'get_tide'", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<TimeZoneName>))]
    public enum TimeZoneName { CET, UTC }

    [Fact]
    public async Task AThinkingModelsThinkingIsReasoningContentWholeOrStreamed()
    {
        string path = ToolCallingModel.Write(ToolCallingModel.ThinkingScript, ToolCallingModel.ThinkingTemplate);
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            using var client = new KvSharpChatClient(model);
            await ReasoningReplies.AssertSplitAsync(client, "Let me see.", "It is sunny.");
        }
        finally { File.Delete(path); }
    }
}
