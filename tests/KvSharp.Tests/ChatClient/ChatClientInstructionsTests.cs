using KvSharp.Engine;
using KvSharp.Extensions.AI;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// ChatOptions.Instructions reach the model: as a system message ahead of the messages, or joined ahead of the first
/// message where that is a system message; for the request only, not kept in a conversation's history.
/// </summary>
public class ChatClientInstructionsTests
{
    private const int MaxTokens = 16;

    private static string Fresh(KvSharpChatClient client, LlmModel llm, IReadOnlyList<TemplateMessage> history)
    {
        using var session = llm.CreateSession();
        var prompt = client.Template.Render(history, addGenerationPrompt: true, llm.Tokenizer).Tokenize(llm.Tokenizer);
        return string.Concat(session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = MaxTokens, StopStrings = client.Template.StopStrings }));
    }

    [Fact]
    public async Task InstructionsAreASystemMessageOrJoinTheFirstOne()
    {
        var ct = TestContext.Current.CancellationToken;
        using var llm = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(llm);
        var options = new ChatOptions { MaxOutputTokens = MaxTokens, Instructions = "Tell it about a dog." };

        var alone = await client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Once upon a time")], options, ct);
        Assert.Equal(Fresh(client, llm, [TemplateMessage.System("Tell it about a dog."), TemplateMessage.User("Once upon a time")]), alone.Text);
        var without = await client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Once upon a time")], new ChatOptions { MaxOutputTokens = MaxTokens }, ct);
        Assert.NotEqual(without.Text, alone.Text);

        var joined = await client.GetResponseAsync([new AIChatMessage(ChatRole.System, "You tell stories."), new AIChatMessage(ChatRole.User, "Once upon a time")], options, ct);
        Assert.Equal(Fresh(client, llm, [TemplateMessage.System("Tell it about a dog.\n\nYou tell stories."), TemplateMessage.User("Once upon a time")]), joined.Text);
    }

    [Fact]
    public async Task AConversationDoesNotKeepThem()
    {
        var ct = TestContext.Current.CancellationToken;
        using var llm = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });
        using var client = new KvSharpChatClient(llm);
        var conversation = client.StartConversation();
        var first = await client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Once upon a time")],
            new ChatOptions { MaxOutputTokens = MaxTokens, ConversationId = conversation.Id, Instructions = "Tell it about a dog." }, ct);
        var second = await client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Then what?")],
            new ChatOptions { MaxOutputTokens = MaxTokens, ConversationId = conversation.Id }, ct);
        // The second turn is the history without the instructions: user, the first reply, the new user message.
        string expected = Fresh(client, llm, [TemplateMessage.User("Once upon a time"), TemplateMessage.Assistant(first.Text), TemplateMessage.User("Then what?")]);
        Assert.Equal(expected, second.Text);
    }
}
