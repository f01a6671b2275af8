using KvSharp.Engine;
using KvSharp.Extensions.AI;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Tests.ChatClient;

/// <summary>
/// KvSharpChatClient on stories260K (the "plain" fallback template): replies equal an InferenceSession fed the same
/// rendered tokens, a conversation's later turns come from its cache (exactly the common token prefix), and fork and
/// rewind reply exactly as a fresh conversation with the same messages would.
/// </summary>
public class KvSharpChatClientTests
{
    private const int MaxTokens = 12;

    private static LlmModel Load() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static ChatOptions Options(string? conversationId = null) => new() { MaxOutputTokens = MaxTokens, ConversationId = conversationId };

    private static AIChatMessage User(string text) => new(ChatRole.User, text);

    private static int[] Prompt(KvSharpChatClient client, LlmModel llm, IReadOnlyList<TemplateMessage> history) =>
        client.Template.Render(history, addGenerationPrompt: true, llm.Tokenizer).Tokenize(llm.Tokenizer);

    /// <summary>What a fresh session replies to <paramref name="history"/>, the tokens its cache holds afterwards (all but the last one sampled) and how many it generated.</summary>
    private static (string Reply, int[] Cached, int Generated) Fresh(KvSharpChatClient client, LlmModel llm, IReadOnlyList<TemplateMessage> history)
    {
        using var session = llm.CreateSession();
        string reply = string.Concat(session.GenerateTokens(Prompt(client, llm, history),
            new GenerationOptions { MaxTokens = MaxTokens, StopStrings = client.Template.StopStrings }));
        return (reply, [.. session.Tokens.Take(session.Cache.Length)], session.LastStats!.GeneratedTokens);
    }

    /// <summary>The prompt tokens a cache holding <paramref name="held"/> serves: the common prefix, less the last prompt token (always fed).</summary>
    private static int ExpectedCached(int[] held, int[] prompt)
    {
        int common = 0;
        while (common < held.Length && common < prompt.Length - 1 && held[common] == prompt[common]) common++;
        return common;
    }

    [Fact]
    public async Task GreedyReplyEqualsASessionOnTheRenderedTokens()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var response = await client.GetResponseAsync([new AIChatMessage(ChatRole.System, "You tell stories."), User("Tell me about a cat")], Options(), cancellationToken: TestContext.Current.CancellationToken);

        TemplateMessage[] history = [TemplateMessage.System("You tell stories."), TemplateMessage.User("Tell me about a cat")];
        var (expected, _, generated) = Fresh(client, llm, history);
        Assert.Equal(expected, response.Text);
        Assert.NotEmpty(expected);
        Assert.Null(response.ConversationId); // stateless: the caller keeps the history
        Assert.Equal("stories260K", response.ModelId);
        Assert.Equal(Prompt(client, llm, history).Length, response.Usage!.InputTokenCount);
        Assert.Equal(0, response.Usage.CachedInputTokenCount);
        Assert.Equal(generated, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
    }

    [Fact]
    public async Task ASecondTurnComesFromTheCacheAndRepliesAsAFreshSessionWould()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var conversation = client.StartConversation();
        var first = await client.GetResponseAsync([User("Hello")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(conversation.Id, first.ConversationId);
        Assert.Equal(0, first.Usage!.CachedInputTokenCount);

        // Only the new message: the client holds the history.
        var second = await client.GetResponseAsync([User("Tell me about a cat")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        TemplateMessage[] turn1 = [TemplateMessage.User("Hello")];
        TemplateMessage[] turn2 = [.. turn1, TemplateMessage.Assistant(first.Text), TemplateMessage.User("Tell me about a cat")];
        var (_, heldAfterTurn1, _) = Fresh(client, llm, turn1);
        int[] prompt2 = Prompt(client, llm, turn2);
        int cached = ExpectedCached(heldAfterTurn1, prompt2);
        Assert.True(cached > first.Usage.InputTokenCount, $"only {cached} tokens of the first turn ({first.Usage.InputTokenCount} prompt tokens) are reusable");
        Assert.Equal(cached, second.Usage!.CachedInputTokenCount);
        Assert.Equal(prompt2.Length, second.Usage.InputTokenCount);
        Assert.Equal(Fresh(client, llm, turn2).Reply, second.Text);
        Assert.Equal(4, conversation.Messages.Count);
        Assert.Equal(second.Text, conversation.Messages[3].Text);

        // A stateless caller resending the whole history gets the same reuse from the stateless session.
        await client.GetResponseAsync([User("Hello")], Options(), cancellationToken: TestContext.Current.CancellationToken);
        var stateless = await client.GetResponseAsync([User("Hello"), new AIChatMessage(ChatRole.Assistant, first.Text), User("Tell me about a cat")], Options(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(cached, stateless.Usage!.CachedInputTokenCount);
        Assert.Equal(second.Text, stateless.Text);
    }

    /// <summary>A conversation of two whole turns.</summary>
    private static async Task<KvSharpConversation> TwoTurns(KvSharpChatClient client)
    {
        var conversation = client.StartConversation();
        await client.GetResponseAsync([User("Hello")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        await client.GetResponseAsync([User("Tell me about a dog")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        return conversation;
    }

    private static List<TemplateMessage> AsTemplate(IEnumerable<AIChatMessage> messages) => [.. messages.Select(m => new TemplateMessage(m.Role.Value, m.Text))];

    [Fact]
    public async Task AForkRepliesAsAFreshConversationAndSharesNothing()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var original = await TwoTurns(client);
        var fork = original.Fork();
        Assert.NotEqual(original.Id, fork.Id);
        Assert.Equal(AsTemplate(original.Messages), AsTemplate(fork.Messages));

        var forked = await client.GetResponseAsync([User("And a bird?")], Options(fork.Id), cancellationToken: TestContext.Current.CancellationToken);
        var expected = Fresh(client, llm, [.. AsTemplate(original.Messages), TemplateMessage.User("And a bird?")]).Reply;
        Assert.Equal(expected, forked.Text);
        Assert.Equal(fork.Id, forked.ConversationId);
        Assert.Equal(4, original.Messages.Count); // the fork's turn is not the original's

        var continued = await client.GetResponseAsync([User("And a bird?")], Options(original.Id), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(expected, continued.Text);
        Assert.True(continued.Usage!.CachedInputTokenCount > 0);
    }

    [Fact]
    public async Task RewindKeepsTheCacheOfTheKeptMessagesAndRepliesAsAFreshConversation()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var conversation = await TwoTurns(client);
        var kept = AsTemplate(conversation.Messages).Take(2).ToList();
        conversation.RewindTo(2);
        Assert.Equal(kept, AsTemplate(conversation.Messages));

        var reply = await client.GetResponseAsync([User("Tell me about a bird")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        List<TemplateMessage> history = [.. kept, TemplateMessage.User("Tell me about a bird")];
        Assert.Equal(Fresh(client, llm, history).Reply, reply.Text);
        int[] keptTokens = client.Template.Render(kept, addGenerationPrompt: false, llm.Tokenizer).Tokenize(llm.Tokenizer);
        Assert.Equal(ExpectedCached(keptTokens, Prompt(client, llm, history)), reply.Usage!.CachedInputTokenCount);
        Assert.True(reply.Usage.CachedInputTokenCount > 0);

        conversation.RewindTo(0);
        Assert.Empty(conversation.Messages);
        Assert.Equal(0, conversation.CachedTokens);
        Assert.Throws<ArgumentOutOfRangeException>(() => conversation.RewindTo(1));
    }

    [Fact]
    public async Task StreamingTextAndUsageEqualTheNonStreamingResponse()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        AIChatMessage[] messages = [User("Tell me about a cat")];
        var whole = await client.GetResponseAsync(messages, Options(), cancellationToken: TestContext.Current.CancellationToken);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(messages, Options(), cancellationToken: TestContext.Current.CancellationToken)) updates.Add(update);
        Assert.True(updates.Count > 2, "the reply streams in pieces");
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        var merged = updates.ToChatResponse();
        Assert.Equal(whole.FinishReason, merged.FinishReason);
        Assert.Equal(whole.Usage!.InputTokenCount, merged.Usage!.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, merged.Usage.OutputTokenCount);
        // The second call found the whole prompt but its last token cached.
        Assert.Equal(whole.Usage.InputTokenCount - 1, merged.Usage.CachedInputTokenCount);
    }

    [Fact]
    public async Task StopSequencesAndMaxOutputTokensAreHonoured()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        AIChatMessage[] messages = [User("Tell me about a cat")];
        string full = (await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 40 }, cancellationToken: TestContext.Current.CancellationToken)).Text;
        string stop = full.Substring(full.Length / 2, 3);
        var stopped = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 40, StopSequences = [stop] }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);

        var three = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 3 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(3, three.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, three.FinishReason);
        Assert.StartsWith(three.Text, full, StringComparison.Ordinal);

        var sampled = new ChatOptions { MaxOutputTokens = 20, Temperature = 1f, TopP = 0.9f, TopK = 40, Seed = 7, FrequencyPenalty = 0.5f, PresencePenalty = 0.5f };
        Assert.Equal((await client.GetResponseAsync(messages, sampled, cancellationToken: TestContext.Current.CancellationToken)).Text, (await client.GetResponseAsync(messages, sampled.Clone(), cancellationToken: TestContext.Current.CancellationToken)).Text);
        // A reply cut off by a full context finishes for its length, as OpenAI reports it.
        int promptLength = Prompt(client, llm, [TemplateMessage.User("Tell me about a cat")]).Length;
        using var tight = new KvSharpChatClient(llm, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = promptLength + 4 } });
        var cut = await tight.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 40 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(ChatFinishReason.Length, cut.FinishReason);
        Assert.Equal(4, cut.Usage!.OutputTokenCount);
        Assert.StartsWith(cut.Text, full, StringComparison.Ordinal);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.GetResponseAsync(messages, new ChatOptions { TopP = 0f }, cancellationToken: TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task BadRequestsFailWithAClearMessage()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var unknown = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([User("Hi")], Options("no-such-id"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("'no-such-id' names no live conversation", unknown.Message);
        var empty = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([], Options(), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("messages is empty", empty.Message);
        var model = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([User("Hi")], new ChatOptions { ModelId = "gpt-4o" }, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("'gpt-4o'", model.Message);

        var released = client.StartConversation();
        released.Release();
        Assert.True(released.IsReleased);
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([User("Hi")], Options(released.Id), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Throws<InvalidOperationException>(() => released.Fork());

        using var small = new KvSharpChatClient(llm, new KvSharpChatClientOptions { Session = new SessionOptions { ContextLength = 8 } });
        var full = await Assert.ThrowsAsync<InvalidOperationException>(() => small.GetResponseAsync([User("Once upon a time there was a long message")], Options(), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("context of 8 tokens", full.Message);
    }

    [Fact]
    public void TheLeastRecentlyUsedConversationIsReleasedBeyondTheLimit()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm, new KvSharpChatClientOptions { MaxConversations = 2 });
        var a = client.StartConversation();
        var b = client.StartConversation();
        Assert.Same(a, client.FindConversation(a.Id)); // a is now the most recently used
        var c = client.StartConversation();
        Assert.True(b.IsReleased);
        Assert.Null(client.FindConversation(b.Id));
        Assert.False(a.IsReleased);
        Assert.False(c.IsReleased);
        Assert.Equal(2, client.ConversationCount);

        using var single = new KvSharpChatClient(llm, new KvSharpChatClientOptions { MaxConversations = 1 });
        var only = single.StartConversation();
        var fork = only.Fork(); // evicts its source, and must not wait on it
        Assert.True(only.IsReleased);
        Assert.Same(fork, single.FindConversation(fork.Id));
    }

    [Fact]
    public async Task CallsOnOneConversationTakeTurns()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var conversation = client.StartConversation();
        await Task.WhenAll(
            Task.Run(() => client.GetResponseAsync([User("Hello")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken)),
            Task.Run(() => client.GetResponseAsync([User("Hi")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken)));
        var roles = conversation.Messages.Select(m => m.Role.Value).ToList();
        Assert.Equal(["user", "assistant", "user", "assistant"], roles);
    }

    /// <summary>Middleware in Microsoft.Extensions.AI's style: counts calls and passes them on.</summary>
    private sealed class CountingChatClient(IChatClient inner) : DelegatingChatClient(inner)
    {
        public int Calls;

        public override Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref Calls);
            return base.GetResponseAsync(messages, options, cancellationToken);
        }

        public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
            CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref Calls);
            return base.GetStreamingResponseAsync(messages, options, cancellationToken);
        }
    }

    [Fact]
    public async Task ComposesWithChatClientBuilderMiddleware()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        CountingChatClient? counting = null;
        IChatClient chat = new ChatClientBuilder(client)
            .UseFunctionInvocation()
            .Use(inner => counting = new CountingChatClient(inner))
            .Build();
        var conversation = chat.GetService<KvSharpChatClient>()!.StartConversation();
        var first = await chat.GetResponseAsync([User("Hello")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        var second = await chat.GetStreamingResponseAsync([User("Tell me about a cat")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken).ToChatResponseAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(2, counting!.Calls);
        Assert.True(second.Usage!.CachedInputTokenCount > 0);
        Assert.Equal(first.Text, conversation.Messages[1].Text);
        Assert.Equal("kvsharp", chat.GetService<ChatClientMetadata>()!.ProviderName);
        Assert.Same(llm, chat.GetService<LlmModel>());
    }

    [Fact]
    public async Task AStreamLeftEarlyKeepsWhatWasReadAndTheConversationGoesOn()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var conversation = client.StartConversation();
        string read = "";
        await foreach (var update in client.GetStreamingResponseAsync([User("Hello")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken))
        {
            read += update.Text;
            if (read.Length > 0) break;
        }
        Assert.Equal(["user", "assistant"], conversation.Messages.Select(m => m.Role.Value));
        Assert.Equal(read, conversation.Messages[1].Text);

        var next = await client.GetResponseAsync([User("Tell me about a cat")], Options(conversation.Id), cancellationToken: TestContext.Current.CancellationToken);
        var history = AsTemplate(conversation.Messages).Take(3).ToList();
        Assert.Equal(Fresh(client, llm, history).Reply, next.Text);
        Assert.True(next.Usage!.CachedInputTokenCount > 0);
    }

    [Fact]
    public async Task JsonResponseFormatRepliesWithTheStartOfAnObjectAndASchemaItCannotEnforceIsRefused()
    {
        using var llm = Load();
        using var client = new KvSharpChatClient(llm);
        var options = new ChatOptions { MaxOutputTokens = 40, ResponseFormat = ChatResponseFormat.Json, Temperature = 0.9f, Seed = 4 };
        var reply = await client.GetResponseAsync([User("Once upon a time")], options, TestContext.Current.CancellationToken);
        var prefix = new KvSharp.Sampling.JsonPrefix(objectOnly: true);
        Assert.True(prefix.Feed(System.Text.Encoding.UTF8.GetBytes(reply.Text)), reply.Text);
        Assert.Contains("{", reply.Text);
        options.ResponseFormat = ChatResponseFormat.ForJsonSchema(System.Text.Json.JsonDocument.Parse("{\"type\": \"string\", \"pattern\": \"(?=a)\"}").RootElement, "w");
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([User("Hi")], options, TestContext.Current.CancellationToken));
        Assert.Contains("pattern: lookahead", e.Message);
    }
}
