using System.Text;
using KvSharp.Engine;
using OpenAI.Chat;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Server.Tests;

/// <summary>
/// POST /v1/chat/completions through the official OpenAI .NET SDK: greedy replies equal an InferenceSession fed the
/// template's tokens (stories260K has no template: the "plain" fallback), streamed or whole, and a second turn is
/// served from the prefix cache exactly as far as it shares whole blocks with the first.
/// </summary>
public class ChatCompletionsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static ChatCompletionOptions Greedy(int maxTokens) => new() { Temperature = 0, MaxOutputTokenCount = maxTokens };

    private static string ReasonText(ChatFinishReason? reason) => reason switch
    {
        ChatFinishReason.Stop => "stop",
        ChatFinishReason.Length => "length",
        _ => $"{reason}",
    };

    [Fact]
    public async Task GreedyChatEqualsAnInferenceSessionOnTheRenderedTokens()
    {
        var ct = TestContext.Current.CancellationToken;
        var chat = ChatReference.SdkClient(server);
        foreach (var (user, max) in new[] { ("Tell me a story about a cat.", 40), ("Lily and Ben went to the park", 80) })
        {
            var expected = ChatReference.Greedy(server.ReferenceModel, [TemplateMessage.System("You tell short stories."), TemplateMessage.User(user)], max);
            Assert.NotEmpty(expected.Text);

            ChatCompletion completion = await chat.CompleteChatAsync([new SystemChatMessage("You tell short stories."), new UserChatMessage(user)], Greedy(max), ct);
            Assert.Equal(expected.Text, completion.Content.Single().Text);
            Assert.Equal(ChatMessageRole.Assistant, completion.Role);
            Assert.Equal(ChatReference.FinishReason(expected.Stats.FinishReason), ReasonText(completion.FinishReason));
            Assert.Equal(expected.PromptTokens.Length, completion.Usage.InputTokenCount);
            Assert.Equal(expected.Stats.GeneratedTokens, completion.Usage.OutputTokenCount);
            Assert.Equal(expected.PromptTokens.Length + expected.Stats.GeneratedTokens, completion.Usage.TotalTokenCount);

            // Streamed: the same text in pieces, the role first, the finish reason last.
            var text = new StringBuilder();
            ChatMessageRole? role = null;
            ChatFinishReason? finish = null;
            ChatTokenUsage? usage = null;
            int updates = 0;
            await foreach (var update in chat.CompleteChatStreamingAsync([new SystemChatMessage("You tell short stories."), new UserChatMessage(user)], Greedy(max), ct))
            {
                if (updates++ == 0) role = update.Role;
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
                finish ??= update.FinishReason;
                usage ??= update.Usage;
            }
            Assert.Equal(expected.Text, text.ToString());
            Assert.True(updates > 2, $"only {updates} updates");
            Assert.Equal(ChatMessageRole.Assistant, role);
            Assert.Equal(completion.FinishReason, finish);
            // The SDK asks for stream_options.include_usage; the streamed usage counts the same tokens.
            Assert.NotNull(usage);
            Assert.Equal(completion.Usage.InputTokenCount, usage.InputTokenCount);
            Assert.Equal(completion.Usage.OutputTokenCount, usage.OutputTokenCount);
        }
        await server.WaitForNoBlocksAsync();
    }

    [Fact]
    public async Task ASecondTurnReportsExactlyTheCachedTokensOfTheSharedPrefix()
    {
        var ct = TestContext.Current.CancellationToken;
        var chat = ChatReference.SdkClient(server);
        const string system = "You are the second-turn test's storyteller.";
        const string first = "Tell me about a little dog.", second = "What did the dog do next?";
        var turn1 = ChatReference.Greedy(server.ReferenceModel, [TemplateMessage.System(system), TemplateMessage.User(first)], 60);

        ChatCompletion reply = await chat.CompleteChatAsync([new SystemChatMessage(system), new UserChatMessage(first)], Greedy(60), ct);
        Assert.Equal(turn1.Text, reply.Content.Single().Text);
        // Other tests' chats on this server share the template's first tokens at most: the system prompt is this test's own.
        Assert.InRange(reply.Usage.InputTokenDetails.CachedTokenCount, 0, server.Engine.Pool.BlockSize - 1);

        List<TemplateMessage> conversation = [TemplateMessage.System(system), TemplateMessage.User(first), TemplateMessage.Assistant(turn1.Text), TemplateMessage.User(second)];
        var turn2 = ChatReference.Greedy(server.ReferenceModel, conversation, 20);
        // The first turn left every position it computed (prompt and reply, its last partial block too) in the cache;
        // the second adopts every token it shares with them, short of its last (whose logits must be computed).
        int blockSize = server.Engine.Pool.BlockSize;
        int shared = turn2.PromptTokens.Zip(turn1.ComputedTokens).TakeWhile(p => p.First == p.Second).Count();
        int expected = Math.Min(shared, turn2.PromptTokens.Length - 1);
        // The reply's blocks count too, not only the first prompt's.
        Assert.True(expected > turn1.PromptTokens.Length / blockSize * blockSize, $"shared {shared} tokens; first prompt {turn1.PromptTokens.Length}");

        ChatCompletion next = await chat.CompleteChatAsync(
            [new SystemChatMessage(system), new UserChatMessage(first), new AssistantChatMessage(reply.Content.Single().Text), new UserChatMessage(second)], Greedy(20), ct);
        Assert.Equal(turn2.PromptTokens.Length, next.Usage.InputTokenCount);
        Assert.Equal(expected, next.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(turn2.Text, next.Content.Single().Text);
        await server.WaitForNoBlocksAsync();
    }
}
