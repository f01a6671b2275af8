using System.Text.Json;
using KvSharp.Server.Tests;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// ChatOptions.AllowMultipleToolCalls false, on a GGUF that makes two calls in one reply
/// (<see cref="ToolCallingModel.TwoCallsScript"/>): only the first comes back, whole or streamed; unset, both do.
/// </summary>
public sealed class ChatClientSingleCallTests() : ScriptedChatClient(ToolCallingModel.TwoCallsScript)
{
    [Theory]
    [InlineData(null)]
    [InlineData(false)]
    public async Task FalseKeepsTheFirstCall(bool? allowMultiple)
    {
        var ct = TestContext.Current.CancellationToken;
        var weather = AIFunctionFactory.Create((string city) => $"18 degrees in {city}", "get_weather", "The weather in a city");
        var options = new ChatOptions { Tools = [weather], MaxOutputTokens = 32, AllowMultipleToolCalls = allowMultiple };
        AIChatMessage[] question = [new(ChatRole.User, "Weather in Paris and Oslo?")];
        string[] expected = allowMultiple == false ? ["Paris"] : ["Paris", "Oslo"];

        var whole = await Client.GetResponseAsync(question, options, ct);
        Assert.Equal(ChatFinishReason.ToolCalls, whole.FinishReason);
        Assert.Equal(expected, Cities(whole.Messages.SelectMany(m => m.Contents)));

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in Client.GetStreamingResponseAsync(question, options, ct)) updates.Add(u);
        Assert.Equal(expected, Cities(updates.SelectMany(u => u.Contents)));
    }

    private static string[] Cities(IEnumerable<AIContent> contents) =>
        [.. contents.OfType<FunctionCallContent>().Select(c => ((JsonElement)c.Arguments!["city"]!).GetString()!)];
}
