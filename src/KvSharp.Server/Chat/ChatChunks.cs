using System.Text;
using System.Text.Json;
using KvSharp.Sampling;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Server.Json;
using KvSharp.Templates;
using KvSharp.Tokenization;

namespace KvSharp.Server.Chat;

/// <summary>
/// A chat call's stream as chat completion chunks: each choice's first chunk carries the role; a reply's thinking goes
/// apart as reasoning_content; with tools, its text up to where a call could begin, then its calls. The chunks take
/// their final shape in <paramref name="writer"/> (chat completion chunks, or the Responses API's events).
/// </summary>
internal sealed class ChatChunks(IChatChunkWriter writer, ITokenizer tokenizer, int choices, ReplySplitting? reasoning = null,
    ChatChunks.ToolReplies? toolReplies = null) : IChunkFormat
{
    /// <summary>How a reply to a request with tools streams, and how a choice's whole reply is read once it ends.</summary>
    internal sealed record ToolReplies(ToolCallSyntax Syntax, ReplySplitting? Reasoning, ForcedToolCall? Forced, int MaxCalls, Func<int, string, ChatReply> Read);

    public const string Role = "assistant";
    private readonly bool[] _roleSent = new bool[choices];
    // Per choice, where its streamed thinking ends (null: not split).
    private readonly IReplySplitter?[] _splitters = [.. Enumerable.Range(0, choices).Select(_ => reasoning?.Start())];
    // With tools, per choice, what of its reply can be shown before it ends.
    private readonly ToolReplyStream[]? _toolStreams = toolReplies is { } t
        ? [.. Enumerable.Range(0, choices).Select(_ => new ToolReplyStream(t.Syntax, t.Reasoning, t.Forced, t.MaxCalls))] : null;

    public bool EndsWithDone => writer.EndsWithDone;

    public IReadOnlyList<byte[]> Start() => writer.Start();

    public IReadOnlyList<byte[]> Error(ApiError error) => writer.Error(error);

    public string Generated(int choice, int token) => _toolStreams?[choice].Generated(tokenizer, token) ?? "";

    public IReadOnlyList<byte[]> Text(int choice, string text, IReadOnlyList<TokenLogprobs>? logprobs)
    {
        if (_toolStreams is { } toolStreams)
        {
            var stream = toolStreams[choice];
            var (shownThought, shownAnswer) = stream.Append(text);
            var calls = stream.TakeCallDeltas();
            var chunks = new List<byte[]>(1 + calls.Count);
            // Held (a call may have begun): no text to send, but the tokens' logprobs if asked for, and what of a call streams.
            if (shownThought.Length > 0 || shownAnswer.Length > 0 || logprobs is { Count: > 0 })
                chunks.AddRange(Serialize([new ChatChunkChoice(choice, Delta(choice, shownAnswer, shownThought), Logprobs(logprobs), null)], null));
            chunks.AddRange(calls.SelectMany(call => Call(choice, call)));
            return chunks;
        }
        if (_splitters[choice] is not { } splitter) return [.. Serialize([new ChatChunkChoice(choice, Delta(choice, text), Logprobs(logprobs), null)], null)];
        var (thought, answer) = splitter.Append(text);
        return [.. Serialize([new ChatChunkChoice(choice, Delta(choice, answer, thought), Logprobs(logprobs), null)], null)];
    }

    /// <summary>
    /// An empty delta (what a split reply still held back, if anything), unless the choice ended before any text (it
    /// still names its role once). With tools: the reply read whole, what of its text was not shown, its calls,
    /// and its finish ("tool_calls" when it called).
    /// </summary>
    public IReadOnlyList<byte[]> Finish(int choice, string finishReason)
    {
        if (_toolStreams != null) return FinishWithTools(choice, toolReplies!.Read(choice, finishReason));
        var (thought, answer) = _splitters[choice]?.Flush() ?? ("", "");
        var delta = !_roleSent[choice] || thought.Length > 0 || answer.Length > 0 ? Delta(choice, answer, thought) : new ChatDelta(null, null);
        return [.. Serialize([new ChatChunkChoice(choice, delta, null, finishReason)], null)];
    }

    private List<byte[]> FinishWithTools(int choice, ChatReply reply)
    {
        var stream = _toolStreams![choice];
        // A streamed call the whole reading does not make as it went out cannot be taken back. Cut by max_tokens, the
        // choice ends as OpenAI ends a call it cut: with what streamed of it and finish_reason "length", which says
        // the call is not whole. Otherwise (its JSON went wrong, text followed where none may) it ends with an error
        // that says so, not with text and calls that do not add up to what was sent.
        if (stream.FinishCalls(reply.ToolCalls) is not { } calls)
            return reply.FinishReason == "length" ? [.. Serialize([new ChatChunkChoice(choice, new ChatDelta(null, null), null, "length")], null)]
                : [.. writer.Error(StreamedCallUnread(choice))];
        var chunks = new List<byte[]>(2 + calls.Count);
        var (thought, answer) = stream.Finish(reply.Reasoning, reply.Content ?? "");
        if (!_roleSent[choice] || thought.Length > 0 || answer.Length > 0) chunks.AddRange(Reply(choice, answer, null, thought));
        chunks.AddRange(calls.SelectMany(call => Call(choice, call)));
        chunks.AddRange(Serialize([new ChatChunkChoice(choice, new ChatDelta(null, null), null, reply.FinishReason)], null));
        return chunks;
    }

    /// <summary>A delta with a piece of a tool call (the role too, if it is the choice's first).</summary>
    private IReadOnlyList<byte[]> Call(int choice, ToolCallDelta call)
    {
        bool first = !_roleSent[choice];
        _roleSent[choice] = true;
        var shaped = new ChatResponseToolCall(call.Index, call.Id, call.Id == null ? null : "function", new ChatResponseFunction(call.Name, call.Arguments));
        return Serialize([new ChatChunkChoice(choice, new ChatDelta(first ? Role : null, null, [shaped]), null, null)], null);
    }

    private static ApiError StreamedCallUnread(int choice) => new(500,
        $"choice {choice}: a tool call streamed as the model wrote it, and the whole reply does not read as that call (its JSON went " +
        "wrong, or text followed where the syntax allows none); what streamed of its calls is not to be used", "server_error", null, "tool_call_unread");

    public IReadOnlyList<byte[]> Usage(Usage usage) => Serialize([], usage);

    /// <summary>A delta with a reply's text (the role too, in a choice's first chunk).</summary>
    private IReadOnlyList<byte[]> Reply(int choice, string text, ChatLogprobs? logprobs, string? reasoning = null) =>
        Serialize([new ChatChunkChoice(choice, Delta(choice, text, reasoning), logprobs, null)], null);

    private ChatDelta Delta(int choice, string text, string? reasoning = null)
    {
        bool first = !_roleSent[choice];
        _roleSent[choice] = true;
        // A split reply's delta carries only what it has: its thinking, its answer, or both.
        bool split = reasoning != null;
        return new ChatDelta(first ? Role : null, split && text.Length == 0 && reasoning!.Length > 0 ? null : text,
            ReasoningContent: split && reasoning!.Length > 0 ? reasoning : null);
    }

    private IReadOnlyList<byte[]> Serialize(ChatChunkChoice[] chunkChoices, Usage? usage) => writer.Write(chunkChoices, usage);

    /// <summary>Tokens' logprobs in OpenAI's chat shape (null when logprobs were not asked for).</summary>
    public ChatLogprobs? Logprobs(IReadOnlyList<TokenLogprobs>? tokens)
    {
        if (tokens == null) return null;
        var content = new ChatTokenLogprob[tokens.Count];
        for (int i = 0; i < content.Length; i++)
        {
            var t = tokens[i];
            var top = Array.ConvertAll(t.Top, alt => { var (text, bytes) = Token(alt.Token); return new ChatTopLogprob(text, alt.Logprob, bytes); });
            var (token, tokenBytes) = Token(t.Sampled.Token);
            content[i] = new ChatTokenLogprob(token, t.Sampled.Logprob, tokenBytes, top);
        }
        return new ChatLogprobs(content);
    }

    /// <summary>A token's text (bytes of an unfinished character show as U+FFFD) and its exact UTF-8 bytes.</summary>
    private (string Text, int[] Bytes) Token(int token)
    {
        var bytes = tokenizer.TokenPiece(token, renderSpecial: true);
        return (Encoding.UTF8.GetString(bytes), Array.ConvertAll(bytes.ToArray(), b => (int)b));
    }
}
