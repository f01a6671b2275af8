using System.Runtime.CompilerServices;
using System.Text;
using KvSharp.Engine;
using KvSharp.Templates;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Extensions.AI;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> in-process over a KvSharp model, whose conversations keep
/// their KV cache between calls. Every call renders the whole conversation with the chat template and computes only
/// the tokens past the longest prefix the conversation's cache already holds (<see cref="PromptResume"/>).
/// <list type="bullet">
/// <item>Without <c>ChatOptions.ConversationId</c> a call is stateless: the messages are the whole history, the
/// response carries no ConversationId, and the client's one stateless session still reuses the longest token prefix it
/// shares with the previous stateless call (a caller resending the history gets the earlier turns from the cache).</item>
/// <item>With <c>ChatOptions.ConversationId</c> (from <see cref="StartConversation"/>) the client holds the history:
/// send only the new messages, as Microsoft.Extensions.AI's contract for a ConversationId asks (middleware such as
/// function invocation relies on it). The response carries the same id. An id that names no live conversation
/// (never started, released, or evicted as the least recently used of <see cref="KvSharpChatClientOptions.MaxConversations"/>)
/// is an <see cref="ArgumentException"/>.</item>
/// </list>
/// Thread-safe: calls on different conversations run in parallel, each on the calling thread (generation is CPU work
/// in the caller's MoveNext); calls on the same conversation, and all stateless calls, wait for each other.
/// The client does not own the model: dispose the model after the client.
/// </summary>
public sealed class KvSharpChatClient : IChatClient
{
    private readonly LlmModel _model;
    private readonly ConversationRegistry _conversations;
    private readonly KvSharpConversation _stateless;
    private readonly ChatClientMetadata _metadata;
    private bool _disposed;

    public KvSharpChatClient(LlmModel model, KvSharpChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Options = options ?? new KvSharpChatClientOptions();
        if (Options.MaxConversations < 1)
            throw new ArgumentOutOfRangeException(nameof(options), Options.MaxConversations, "KvSharpChatClientOptions.MaxConversations must be at least 1");
        if (Options.DefaultMaxOutputTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(options), Options.DefaultMaxOutputTokens, "KvSharpChatClientOptions.DefaultMaxOutputTokens must be >= 0");
        Options.DefaultSampling.Validate();
        _model = model;
        Template = Options.Template ?? ChatTemplate.ForModel(model);
        ModelId = Options.ModelId ?? Path.GetFileNameWithoutExtension(model.Path);
        _conversations = new ConversationRegistry(Options.MaxConversations);
        _stateless = NewConversation("stateless");
        _metadata = new ChatClientMetadata("kvsharp", defaultModelId: ModelId);
    }

    public KvSharpChatClientOptions Options { get; }
    public ChatTemplate Template { get; }
    public string ModelId { get; }
    /// <summary>Conversations alive now (at most <see cref="KvSharpChatClientOptions.MaxConversations"/>).</summary>
    public int ConversationCount => _conversations.Count;

    /// <summary>
    /// A new, empty conversation with its own KV cache; pass its <see cref="KvSharpConversation.Id"/> as
    /// <c>ChatOptions.ConversationId</c>. When <see cref="KvSharpChatClientOptions.MaxConversations"/> are alive, the
    /// least recently used is released to make room.
    /// </summary>
    public KvSharpConversation StartConversation()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var conversation = NewConversation("kvs-" + Guid.NewGuid().ToString("N"));
        _conversations.Add(conversation)?.Close();
        return conversation;
    }

    /// <summary>The live conversation with that id, or null.</summary>
    public KvSharpConversation? FindConversation(string id) => _conversations.Find(id);

    private KvSharpConversation NewConversation(string id) => new(this, id, _model.CreateSession(Options.Session));

    internal void Release(KvSharpConversation conversation)
    {
        _conversations.Remove(conversation);
        conversation.Close();
    }

    /// <summary>The prompt tokens of <paramref name="messages"/>: the template's special tokens parsed, the messages' never.</summary>
    internal int[] Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        Template.Render(messages, addGenerationPrompt, _model.Tokenizer).Tokenize(_model.Tokenizer);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var turn = new Turn();
        var text = new StringBuilder();
        await foreach (string piece in Generate(messages, options, turn, cancellationToken).ConfigureAwait(false)) text.Append(piece);
        return new ChatResponse(new AIChatMessage(ChatRole.Assistant, turn.Contents(text.ToString())) { MessageId = turn.ResponseId, CreatedAt = turn.CreatedAt })
        {
            ResponseId = turn.ResponseId,
            ConversationId = turn.ConversationId,
            ModelId = ModelId,
            CreatedAt = turn.CreatedAt,
            FinishReason = turn.FinishReason,
            Usage = turn.Usage,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var turn = new Turn();
        // With tools, the whole reply, read for calls at its end.
        var text = new StringBuilder();
        IReplySplitter? splitter = null;
        await foreach (string piece in Generate(messages, options, turn, cancellationToken).ConfigureAwait(false))
        {
            // With tools: the reasoning, and the text up to where a call could begin, as they come.
            if (turn.ToolStream is { } toolStream)
            {
                text.Append(piece);
                var (shownThought, shownAnswer) = toolStream.Append(piece);
                if (Pieces(shownThought, shownAnswer) is { Count: > 0 } shown) yield return Update(turn, shown);
                continue;
            }
            if (turn.Reasoning is not { } reasoning)
            {
                yield return Update(turn, new TextContent(piece));
                continue;
            }
            var (thought, answer) = (splitter ??= reasoning.Start()).Append(piece);
            if (Pieces(thought, answer) is { Count: > 0 } contents) yield return Update(turn, contents);
        }
        if (turn.ToolStream is { } ended)
        {
            // The reply read whole: what of its text was not shown yet, then its calls.
            var whole = turn.Contents(text.ToString());
            var (restThought, restAnswer) = ended.Finish(whole.OfType<TextReasoningContent>().FirstOrDefault()?.Text, whole.OfType<TextContent>().FirstOrDefault()?.Text ?? "");
            var rest = Pieces(restThought, restAnswer);
            rest.AddRange(whole.OfType<FunctionCallContent>());
            if (rest.Count > 0) yield return Update(turn, rest);
        }
        else if (splitter?.Flush() is var (restThought, restAnswer) && Pieces(restThought, restAnswer) is { Count: > 0 } rest) yield return Update(turn, rest);
        var last = Update(turn, new UsageContent(turn.Usage!));
        last.FinishReason = turn.FinishReason;
        yield return last;
    }

    private ChatResponseUpdate Update(Turn turn, AIContent content) => Update(turn, [content]);

    /// <summary>A streamed piece of a thinking model's reply: its thinking and its answer, as far as each has text.</summary>
    private static List<AIContent> Pieces(string thought, string answer)
    {
        var contents = new List<AIContent>();
        if (thought.Length > 0) contents.Add(new TextReasoningContent(thought));
        if (answer.Length > 0) contents.Add(new TextContent(answer));
        return contents;
    }

    private ChatResponseUpdate Update(Turn turn, IList<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = turn.ResponseId,
        MessageId = turn.ResponseId,
        ConversationId = turn.ConversationId,
        ModelId = ModelId,
        CreatedAt = turn.CreatedAt,
    };

    /// <summary>
    /// One reply: picks the conversation, renders its history with the new messages, resumes its session at the longest
    /// cached prefix and streams the reply. The history gains the messages and the reply (as far as it was read, if the
    /// caller stops early or cancels) once generation has started.
    /// </summary>
    private async IAsyncEnumerable<string> Generate(IEnumerable<AIChatMessage> messages, ChatOptions? options, Turn turn,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var incoming = ChatOptionsMapping.ToTemplateMessages(messages);
        if (incoming.Count == 0) throw new ArgumentException("messages is empty: there is nothing to reply to", nameof(messages));
        if (options?.ModelId is { } modelId && modelId != ModelId)
            throw new ArgumentException($"ChatOptions.ModelId '{modelId}' is not this client's model '{ModelId}'", nameof(options));
        // This client answers every call in full and never hands out a continuation token, so one it is given cannot be
        // its own: resuming it would silently answer a different request.
        if (options?.ContinuationToken != null)
            throw new NotSupportedException("ChatOptions.ContinuationToken: KvSharpChatClient has no background responses to resume (it answers every call in full)");
        var generation = ChatOptionsMapping.ToGeneration(options, Options, Template);
        var tools = ChatToolMapping.Of(options, Template);
        if (tools != null && generation.Format != ResponseFormat.Text)
            throw new NotSupportedException("ChatOptions.ResponseFormat Json with Tools is not supported: a reply would have to be JSON and a tool call at once");
        var conversation = options?.ConversationId is { } id
            ? _conversations.Find(id) ?? throw new ArgumentException($"ChatOptions.ConversationId '{id}' names no live conversation of this " +
                $"client: start one with StartConversation() (a released one, or the least recently used beyond MaxConversations = {Options.MaxConversations}, is gone)", nameof(options))
            : _stateless;

        using var gate = await conversation.EnterAsync(cancellationToken).ConfigureAwait(false);
        List<ChatMessage> history = conversation == _stateless ? incoming : [.. conversation.History, .. incoming];
        // Instructions go to the template with this request's messages but are not kept in the conversation's history.
        var rendered = Template.Render(ChatOptionsMapping.WithInstructions(history, options?.Instructions), addGenerationPrompt: true, _model.Tokenizer,
            ChatOptionsMapping.TemplateVariables(options, tools));
        // A thinking model's reply: its think block (or Harmony analysis) comes apart as TextReasoningContent.
        turn.Reasoning = ReplySplitting.Of(Template, rendered.Text);
        // A required call: the reply begun with the call's opening, the rest held to the tools' schemas.
        if (tools?.Forced is { } required)
        {
            (rendered, var forced) = required.Begin(rendered);
            tools = tools with { Forced = forced };
            generation = generation with { Format = ResponseFormat.JsonSchema, Schema = forced.Constraint };
        }
        // Its calls still come whole, as FunctionCallContent, when the reply ends: M.E.AI has no partial call (its own
        // OpenAI client joins streamed argument fragments into whole calls too), so the stream's call deltas go untaken.
        if (tools != null) turn.ToolStream = new ToolReplyStream(tools.Syntax, turn.Reasoning, tools.Forced, tools.MaxCalls);
        int[] prompt = rendered.Tokenize(_model.Tokenizer);
        var session = conversation.Session;
        // Room for the prompt and at least one generated token.
        if (prompt.Length >= session.ContextLength)
            throw new InvalidOperationException($"the conversation renders to {prompt.Length} tokens and leaves no room for a reply in the " +
                $"context of {session.ContextLength} tokens (KvSharpChatClientOptions.Session.ContextLength)");
        var resume = PromptResume.Resume(session, prompt);
        var pieces = session.GenerateTokens(resume.Pending, generation);
        turn.ResponseId = "kvs-" + Guid.NewGuid().ToString("N");
        turn.CreatedAt = DateTimeOffset.UtcNow;
        turn.ConversationId = conversation == _stateless ? null : conversation.Id;
        var reply = new StringBuilder();
        bool complete = false;
        try
        {
            int reported = prompt.Length;
            foreach (string piece in pieces)
            {
                cancellationToken.ThrowIfCancellationRequested();
                reply.Append(piece);
                // The tokens behind the piece (special ones show no text) before the piece itself.
                for (; turn.ToolStream != null && reported < session.Tokens.Count; reported++) turn.ToolStream.Generated(_model.Tokenizer, session.Tokens[reported]);
                yield return piece;
            }
            if (tools != null) turn.Reply = tools.Read(reply.ToString(), ToolCallSyntax.ReplyText(_model.Tokenizer, session.Tokens.Skip(prompt.Length)), turn.Reasoning);
            complete = true;
        }
        finally
        {
            // A reply that called tools is kept as the template renders calls, so the next turn finds it in the cache;
            // a Harmony reply as its answer and reasoning (its template refuses channel markers in a turn's content).
            history.Add(complete && turn.Reply is { Calls.Count: > 0 } called
                ? new ChatMessage("assistant", called.Content) { ToolCalls = called.Calls, Reasoning = called.Reasoning }
                : turn.Reasoning is { IsHarmony: true } harmony ? harmony.Assistant(reply.ToString()) : ChatMessage.Assistant(reply.ToString()));
            conversation.Replace(history);
        }
        var stats = session.LastStats!;
        turn.FinishReason = turn.Reply is { Calls.Count: > 0 } ? ChatFinishReason.ToolCalls : ChatOptionsMapping.ToFinishReason(stats.FinishReason);
        turn.Usage = new UsageDetails
        {
            InputTokenCount = prompt.Length,
            CachedInputTokenCount = stats.ReusedTokens,
            OutputTokenCount = stats.GeneratedTokens,
            TotalTokenCount = prompt.Length + stats.GeneratedTokens,
        };
    }

    /// <summary>What a finished reply reports besides its text.</summary>
    private sealed class Turn
    {
        /// <summary>With tools, the reply read for calls (null without tools).</summary>
        public ToolCallReply? Reply { get; set; }
        /// <summary>With tools, what of the reply can be shown while it streams (null without tools).</summary>
        public ToolReplyStream? ToolStream { get; set; }
        /// <summary>For a thinking model, how its reply splits into reasoning and answer; null for other models.</summary>
        public ReplySplitting? Reasoning { get; set; }

        /// <summary>The reply's contents: its text (its thinking apart, for a thinking model), or with calls, the text outside them (if any) and the calls.</summary>
        public IList<AIContent> Contents(string text)
        {
            if (Reply is not { Calls.Count: > 0 } called)
            {
                if (Reasoning?.Split(text) is not (string thought, var answer)) return [new TextContent(text)];
                return [new TextReasoningContent(thought), new TextContent(answer)];
            }
            var contents = new List<AIContent>();
            if (called.Reasoning != null) contents.Add(new TextReasoningContent(called.Reasoning));
            if (called.Content.Length > 0) contents.Add(new TextContent(called.Content));
            contents.AddRange(called.Calls.Select(ChatToolMapping.ToContent));
            return contents;
        }

        public string? ResponseId { get; set; }
        public string? ConversationId { get; set; }
        public DateTimeOffset? CreatedAt { get; set; }
        public ChatFinishReason? FinishReason { get; set; }
        public UsageDetails? Usage { get; set; }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        return null;
    }

    /// <summary>Releases every conversation and its KV cache (waiting for running generations); the model stays loaded.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var conversation in _conversations.Clear()) conversation.Close();
        _stateless.Close();
    }
}
