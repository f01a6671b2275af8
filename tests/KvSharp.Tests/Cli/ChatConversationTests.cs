using KvSharp.Cli.Chat;
using KvSharp.Engine;
using KvSharp.Templates;

namespace KvSharp.Tests.Cli;

/// <summary>
/// The turn logic of `kvsharp chat` in process on stories260K: the second turn feeds only what the template added,
/// the reused cache gives the reply a fresh session would give, and a changed system prompt rewinds only as far as needed.
/// </summary>
public class ChatConversationTests
{
    private static readonly GenerationOptions Greedy = new() { MaxTokens = 12, StopStrings = ["\nUser:"] };

    private static LlmModel Load() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static string Reply(InferenceSession session, int[] tokens) => string.Concat(session.GenerateTokens(tokens, Greedy));

    /// <summary>Sets the system prompt, then runs one whole turn: the user's message and the reply.</summary>
    private static void SystemAndTurn(ChatConversation chat, string system, string user)
    {
        chat.SetSystemPrompt(system);
        var tokens = chat.BeginTurn(user, out _)!.Value.Pending;
        chat.EndTurn(Reply(chat.Session, tokens));
    }

    [Fact]
    public void SecondTurnReusesTheCacheAndRepliesAsAFreshSessionWould()
    {
        using var llm = Load();
        using var session = llm.CreateSession();
        var template = ChatTemplate.ForModel(llm);
        var chat = new ChatConversation(session, template, llm.Tokenizer);

        var firstCost = chat.BeginTurn("Hello", out _)!.Value;
        var first = firstCost.Pending;
        Assert.Equal(0, firstCost.Cached);
        chat.EndTurn(Reply(session, first));

        var cost = chat.BeginTurn("Tell me about a cat", out int needed)!.Value;
        var second = cost.Pending;
        int[] all = template.Render(chat.Messages, true, llm.Tokenizer).Tokenize(llm.Tokenizer);
        Assert.Equal(all.Length, needed);
        Assert.True(cost.Cached > first.Length / 2, $"only {cost.Cached} of the {first.Length} first-turn prompt tokens were reused");
        Assert.Equal(all, session.Tokens.Concat(second));
        Assert.Equal(all.Length, cost.Cached + cost.New);
        string reply = Reply(session, second);
        Assert.Equal(cost.Cached, session.LastStats!.ReusedTokens);

        using var fresh = llm.CreateSession();
        Assert.Equal(reply, Reply(fresh, all));
    }

    [Fact]
    public void ChangingTheSystemPromptRewindsToTheFirstChangedToken()
    {
        using var llm = Load();
        using var session = llm.CreateSession();
        var chat = new ChatConversation(session, ChatTemplate.ForModel(llm), llm.Tokenizer);
        SystemAndTurn(chat, "You tell stories.", "Hi");
        int held = session.Tokens.Count;

        chat.SetSystemPrompt("You tell short stories.");
        Assert.Equal("You tell short stories.", chat.SystemPrompt);
        var cost = chat.BeginTurn("Hi again", out _)!.Value;
        var t2 = cost.Pending;
        Assert.True(cost.Rewound > 0 && cost.Rewound < held);
        Assert.True(cost.Cached > 0, "BOS and 'You tell' are unchanged and stay cached");
        Assert.NotEmpty(t2);
    }

    [Fact]
    public void ResetKeepsTheSystemPromptAndEmptiesTheCache()
    {
        using var llm = Load();
        using var session = llm.CreateSession();
        var chat = new ChatConversation(session, ChatTemplate.ForModel(llm), llm.Tokenizer);
        SystemAndTurn(chat, "S", "Hi");
        chat.Reset();
        Assert.Equal(new[] { ChatMessage.System("S") }, chat.Messages);
        Assert.Empty(session.Tokens);
        Assert.Equal(0, session.Cache.Length);
    }

    [Fact]
    public void AMessageThatDoesNotFitIsDroppedAndReported()
    {
        using var llm = Load();
        using var session = llm.CreateSession(new SessionOptions { ContextLength = 16 });
        var chat = new ChatConversation(session, ChatTemplate.ForModel(llm), llm.Tokenizer);
        Assert.Null(chat.BeginTurn("Once upon a time there was a very long message that does not fit", out int needed));
        Assert.True(needed >= 16);
        Assert.Empty(chat.Messages);
    }

    [Fact]
    public void ATemplateThatRejectsTheConversationDropsTheMessage()
    {
        using var llm = Load();
        using var session = llm.CreateSession();
        var chat = new ChatConversation(session, ChatTemplate.Parse("{{ raise_exception('no ' + messages[-1].content) }}"), llm.Tokenizer);
        var e = Assert.Throws<TemplateException>(() => chat.BeginTurn("way", out _));
        Assert.Equal("no way", e.Reason);
        Assert.Empty(chat.Messages);
    }
}
