using System.Text;
using Microsoft.Extensions.AI;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>Microsoft.Extensions.AI.OpenAI's IChatClient adapter over the OpenAI SDK works against the server, whole and streamed.</summary>
public class OpenAiAdapterTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task TheSdksIChatClientGetsTheGreedyReplyWholeAndStreamed()
    {
        var ct = TestContext.Current.CancellationToken;
        using IChatClient chat = ChatReference.SdkClient(server).AsIChatClient();
        const string user = "Tell me a story about a red ball.";
        var expected = ChatReference.Greedy(server.ReferenceModel, [TemplateMessage.System("You tell stories."), TemplateMessage.User(user)], 30);
        AiChatMessage[] messages = [new(ChatRole.System, "You tell stories."), new(ChatRole.User, user)];
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 30 };

        var response = await chat.GetResponseAsync(messages, options, ct);
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal(expected.Stats.FinishReason == Engine.FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(expected.PromptTokens.Length, response.Usage?.InputTokenCount);
        Assert.Equal(expected.Stats.GeneratedTokens, response.Usage?.OutputTokenCount);
        // The same prompt again: its whole blocks but the last token's come from the prefix cache.
        int blockSize = server.Engine.Pool.BlockSize;
        var again = await chat.GetResponseAsync(messages, options, ct);
        Assert.Equal(expected.PromptTokens.Length - 1, again.Usage?.CachedInputTokenCount);

        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.GetStreamingResponseAsync(messages, options, ct))
        {
            text.Append(update.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(expected.Text, text.ToString());
        Assert.Equal(response.FinishReason, finish);
        await server.WaitForNoBlocksAsync();
    }
}
