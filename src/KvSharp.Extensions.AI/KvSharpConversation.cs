using KvSharp.Engine;
using KvSharp.Templates;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace KvSharp.Extensions.AI;

/// <summary>
/// One conversation of a <see cref="KvSharpChatClient"/>: its messages and an <see cref="InferenceSession"/> whose KV
/// cache holds them between calls. Continue it with <c>ChatOptions.ConversationId = conversation.Id</c>, sending only
/// the new messages. One generation at a time: calls on the same conversation wait for each other (different
/// conversations run in parallel), and <see cref="Fork"/>, <see cref="RewindTo"/> and <see cref="Release"/> wait for a
/// running generation to end.
/// </summary>
public sealed class KvSharpConversation
{
    private readonly KvSharpChatClient _client;
    private readonly List<ChatMessage> _messages = [];
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _released;

    internal KvSharpConversation(KvSharpChatClient client, string id, InferenceSession session)
    {
        _client = client;
        Id = id;
        Session = session;
    }

    /// <summary>The id to pass as <c>ChatOptions.ConversationId</c>.</summary>
    public string Id { get; }
    internal InferenceSession Session { get; }
    internal IReadOnlyList<ChatMessage> History => _messages;

    /// <summary>The messages so far, replies included (a copy).</summary>
    public IReadOnlyList<AIChatMessage> Messages
    {
        get
        {
            lock (_messages) return _messages.Select(m => new AIChatMessage(new ChatRole(m.Role), m.Content)).ToList();
        }
    }

    /// <summary>Tokens of the conversation the KV cache holds now.</summary>
    public int CachedTokens => Session.Cache.Length;
    /// <summary>Whether <see cref="Release"/> (or eviction as the least recently used) ended it.</summary>
    public bool IsReleased => _released;

    /// <summary>
    /// A new conversation with a copy of these messages and nothing mutable shared: its own session, which computes the
    /// copied conversation on its first call (the cache is not copied). Counts as a use of this conversation, so its own
    /// fork evicts it only when <see cref="KvSharpChatClientOptions.MaxConversations"/> is 1.
    /// </summary>
    public KvSharpConversation Fork()
    {
        List<ChatMessage> copy;
        using (Enter())
        {
            lock (_messages) copy = [.. _messages];
        }
        // Outside the gate: starting the fork may evict, and closing a conversation waits for its gate.
        _client.FindConversation(Id);
        var fork = _client.StartConversation();
        fork.Replace(copy);
        return fork;
    }

    /// <summary>
    /// Forgets every message from index <paramref name="messageIndex"/> on and truncates the KV cache to the tokens the
    /// first <paramref name="messageIndex"/> messages render to: the next call continues as a fresh conversation with
    /// those messages would, computing only what follows them.
    /// </summary>
    public void RewindTo(int messageIndex)
    {
        using var _ = Enter();
        if (messageIndex < 0 || messageIndex > _messages.Count)
            throw new ArgumentOutOfRangeException(nameof(messageIndex), messageIndex, $"conversation {Id} has {_messages.Count} messages");
        lock (_messages) _messages.RemoveRange(messageIndex, _messages.Count - messageIndex);
        if (messageIndex == 0)
        {
            Session.Reset();
            return;
        }
        int[] kept = _client.Render(_messages, addGenerationPrompt: false);
        PromptResume.KeepCommonPrefix(Session, kept, kept.Length);
    }

    /// <summary>Ends the conversation and frees its KV cache; its id names nothing afterwards.</summary>
    public void Release() => _client.Release(this);

    /// <summary>Waits for the running generation, if any, and refuses a released conversation.</summary>
    internal Gate Enter()
    {
        _gate.Wait();
        return ThrowIfReleased(new Gate(_gate));
    }

    /// <inheritdoc cref="Enter"/>
    internal async Task<Gate> EnterAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        return ThrowIfReleased(new Gate(_gate));
    }

    private Gate ThrowIfReleased(Gate gate)
    {
        if (!_released) return gate;
        gate.Dispose();
        throw new InvalidOperationException($"conversation {Id} was released (by Release, or as the least recently used of {_client.Options.MaxConversations} live conversations)");
    }

    /// <summary>Marks it released and frees the cache once any running generation has ended.</summary>
    internal void Close()
    {
        _gate.Wait();
        try
        {
            _released = true;
            Session.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Sets the messages (the caller holds the gate).</summary>
    internal void Replace(IEnumerable<ChatMessage> messages)
    {
        var copy = messages.ToList();
        lock (_messages)
        {
            _messages.Clear();
            _messages.AddRange(copy);
        }
    }

    /// <summary>The held gate: disposing it lets the next generation in.</summary>
    internal readonly struct Gate(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }
}
