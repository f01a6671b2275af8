using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Server.Tests;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// KvSharpChatClient streaming a reply with tools, on a GGUF that thinks, says what it will do, then calls a tool
/// (<see cref="ToolCallingModel.ThinkThenCallScript"/>): the reasoning and each piece of text before the call come as
/// their own updates while the reply is generated, the call after them, and together they are what the same request
/// gets whole.
/// </summary>
public sealed class ChatClientToolStreamingTests() : ScriptedChatClient(ToolCallingModel.ThinkThenCallScript, ToolCallingModel.ThinkingToolTemplate)
{
    private static ChatOptions Options() => new()
    {
        Tools = [AIFunctionFactory.Create((string city) => $"18 degrees in {city}", "get_weather", "The weather in a city")],
        MaxOutputTokens = 32,
    };

    [Fact]
    public async Task TheTextBeforeTheCallStreamsPieceByPiece()
    {
        var ct = TestContext.Current.CancellationToken;
        AIChatMessage[] question = [new(ChatRole.User, "Weather in Paris?")];
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in Client.GetStreamingResponseAsync(question, Options(), ct)) updates.Add(u);

        // One update per piece the model wrote before the call: the client hands each on as it is generated.
        var texts = updates.Select(u => string.Concat(u.Contents.OfType<TextContent>().Select(t => t.Text))).Where(t => t.Length > 0).ToList();
        Assert.Equal(["Let me check", " the weather."], texts);
        Assert.Equal("Let me see.", string.Concat(updates.SelectMany(u => u.Contents).OfType<TextReasoningContent>().Select(r => r.Text)));
        int callAt = updates.FindIndex(u => u.Contents.OfType<FunctionCallContent>().Any());
        Assert.True(updates.FindLastIndex(u => u.Contents.OfType<TextContent>().Any()) < callAt);
        Assert.Equal("get_weather", Assert.Single(updates[callAt].Contents.OfType<FunctionCallContent>()).Name);
        Assert.Equal(ChatFinishReason.ToolCalls, updates[^1].FinishReason);

        var whole = await Client.GetResponseAsync(question, Options(), ct);
        Assert.Equal("Let me check the weather.", whole.Text);
        Assert.Equal("Let me see.", Assert.Single(whole.Messages.Single().Contents.OfType<TextReasoningContent>()).Text);
    }
}
