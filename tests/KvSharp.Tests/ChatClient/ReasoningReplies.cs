using Microsoft.Extensions.AI;

namespace KvSharp.Tests.ChatClient;

/// <summary>How a thinking model's reply to one question comes back through a chat client, whole and streamed.</summary>
internal static class ReasoningReplies
{
    /// <summary>Asks "Weather?" whole and streamed: each gives <paramref name="reasoning"/> as TextReasoningContent first and <paramref name="text"/> as the text.</summary>
    public static async Task AssertSplitAsync(IChatClient client, string reasoning, string text)
    {
        var options = new ChatOptions { MaxOutputTokens = 16 };
        ChatMessage[] question = [new(ChatRole.User, "Weather?")];
        var response = await client.GetResponseAsync(question, options, TestContext.Current.CancellationToken);
        Assert.Equal(reasoning, Assert.IsType<TextReasoningContent>(response.Messages.Single().Contents[0]).Text);
        Assert.Equal(text, response.Text);
        string thought = "", answer = "";
        await foreach (var u in client.GetStreamingResponseAsync(question, options, TestContext.Current.CancellationToken))
        {
            thought += string.Concat(u.Contents.OfType<TextReasoningContent>().Select(c => c.Text));
            answer += string.Concat(u.Contents.OfType<TextContent>().Select(c => c.Text));
        }
        Assert.Equal((reasoning, text), (thought, answer));
    }
}
