using KvSharp.Engine;
using KvSharp.Extensions.AI;
using KvSharp.Server.Tests;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// KvSharpChatClient on a GGUF whose weights answer in gpt-oss's Harmony messages (<see cref="HarmonyModel"/>): the
/// analysis comes back as TextReasoningContent and the final message as the text, whole or streamed; a message to
/// functions.NAME as a FunctionCallContent; and a response sent back as history (its reasoning with it) renders.
/// </summary>
public sealed class HarmonyChatClientTests
{
    private static readonly ChatOptions Options = new() { MaxOutputTokens = 16 };

    private static async Task WithClient(string[] script, Func<KvSharpChatClient, Task> test)
    {
        string path = ToolCallingModel.Write(script, HarmonyModel.Template);
        try
        {
            using var model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
            using var client = new KvSharpChatClient(model);
            await test(client);
        }
        finally { File.Delete(path); }
    }

    private static AIChatMessage User(string text) => new(ChatRole.User, text);

    [Fact]
    public Task TheAnalysisIsReasoningContentWholeOrStreamed() => WithClient(HarmonyModel.Answer, async client =>
    {
        await ReasoningReplies.AssertSplitAsync(client, "Let me see.", "It is sunny.");

        // The response as history, its reasoning with it, then a new question: rendered (as thinking), not refused.
        var response = await client.GetResponseAsync([User("Weather?")], Options, TestContext.Current.CancellationToken);
        var again = await client.GetResponseAsync([User("Weather?"), .. response.Messages, User("And tomorrow?")], Options, TestContext.Current.CancellationToken);
        Assert.Equal("It is sunny.", again.Text);
    });

    [Fact]
    public Task AMessageToAFunctionIsAFunctionCall() => WithClient(HarmonyModel.Call, async client =>
    {
        var options = new ChatOptions { MaxOutputTokens = 16, Tools = [AIFunctionFactory.Create((string city) => "sunny", "get_weather", "The weather in a city")] };
        var response = await client.GetResponseAsync([User("Weather?")], options, TestContext.Current.CancellationToken);
        Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
        var contents = response.Messages.Single().Contents;
        Assert.Equal("Need the weather.", Assert.IsType<TextReasoningContent>(contents[0]).Text);
        var call = Assert.IsType<FunctionCallContent>(Assert.Single(contents, c => c is FunctionCallContent));
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", call.Arguments!["city"]!.ToString());
        Assert.Equal("", response.Text);
    });
}
