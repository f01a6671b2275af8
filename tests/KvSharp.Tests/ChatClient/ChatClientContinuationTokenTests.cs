using KvSharp.Engine;
using KvSharp.Extensions.AI;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>A continuation token is refused: the client has no background responses, so it could only answer another request.</summary>
public class ChatClientContinuationTokenTests
{
    [Fact]
    public async Task AContinuationTokenIsRefused()
    {
        using var llm = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var client = new KvSharpChatClient(llm);
        var options = new ChatOptions { ContinuationToken = ResponseContinuationToken.FromBytes(new byte[] { 1, 2, 3 }) };
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Hi")], options, TestContext.Current.CancellationToken));
        Assert.Contains("ContinuationToken", e.Message);
        // Background responses allowed but not asked to resume: answered in full, no token.
        var answered = await client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Hi")], new ChatOptions { AllowBackgroundResponses = true, MaxOutputTokens = 4 }, TestContext.Current.CancellationToken);
        Assert.Null(answered.ContinuationToken);
        Assert.NotEmpty(answered.Text);
    }
}
