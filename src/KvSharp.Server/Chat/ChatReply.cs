using KvSharp.Templates;
using KvSharp.Tokenization;

namespace KvSharp.Server.Chat;

/// <summary>
/// One choice's reply read for tool calls: its text outside the calls (null when the calls are all it holds) and
/// the calls; a reply without calls is its generated text as it is, with its own finish reason.
/// </summary>
internal sealed record ChatReply(string? Content, IReadOnlyList<ChatToolCall> ToolCalls, string FinishReason, string? Reasoning = null)
{
    /// <summary>
    /// A reply without tools: its text, its reasoning apart where <paramref name="reasoning"/> says how (null: not
    /// split). A Harmony reply's answer is its final text: a call it made to a tool the request did not give is dropped.
    /// </summary>
    public static ChatReply Text(string text, string finishReason, ReplySplitting? reasoning)
    {
        if (reasoning == null) return new ChatReply(text, [], finishReason);
        var (thought, answer) = reasoning.Split(text);
        return new ChatReply(answer, [], finishReason, thought);
    }

    /// <summary>
    /// Reads the generated <paramref name="tokens"/> with their special tokens rendered (a family's call marker may be
    /// one) and the end-of-generation tokens left out; for a <paramref name="forced"/> call, between its opening and
    /// closing.
    /// </summary>
    public static ChatReply Read(ChatTools tools, ITokenizer tokenizer, IReadOnlyList<int> tokens, string text, string finishReason, ReplySplitting? reasoning,
        ForcedToolCall? forced = null) =>
        tools.Syntax.ReadCalls(ToolCallSyntax.ReplyText(tokenizer, tokens), tools.Definitions, reasoning, forced, tools.MaxCalls) is { } reply
            ? new ChatReply(reply.Content.Length == 0 ? null : reply.Content, reply.Calls, "tool_calls", reply.Reasoning)
            : Text(text, finishReason, reasoning);

    /// <summary>The calls in OpenAI's shape (with their index for a stream's delta); null when none.</summary>
    public ChatResponseToolCall[]? Calls(bool withIndex) => ToolCalls.Count == 0 ? null
        : [.. ToolCalls.Select((c, i) => new ChatResponseToolCall(withIndex ? i : null, c.Id, "function", new ChatResponseFunction(c.Name, c.Arguments)))];
}
