namespace KvSharp.Templates;

/// <summary>
/// One turn of a conversation: its role ("system", "user", "assistant", "tool" ...) and its text; an assistant turn
/// may carry the tools it called, a tool turn the call it answers.
/// </summary>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>An assistant turn's tool calls (OpenAI's <c>tool_calls</c>); null for none.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }
    /// <summary>A tool turn's answer to this call (OpenAI's <c>tool_call_id</c>); null for other turns.</summary>
    public string? ToolCallId { get; init; }
    /// <summary>A tool turn's tool name, which some templates print; null where not given.</summary>
    public string? Name { get; init; }
    /// <summary>
    /// An assistant turn's reasoning as a client sent it back (OpenAI-compatible servers' <c>reasoning_content</c>);
    /// null for none. Templates read it under either name models use: reasoning_content (Qwen3, DeepSeek) or
    /// thinking (gpt-oss, which renders it beside a tool call and in a training transcript's last turn).
    /// </summary>
    public string? Reasoning { get; init; }

    public static ChatMessage System(string content) => new("system", content);
    public static ChatMessage User(string content) => new("user", content);
    public static ChatMessage Assistant(string content) => new("assistant", content);
    public static ChatMessage Tool(string content, string? toolCallId, string? name = null) => new("tool", content) { ToolCallId = toolCallId, Name = name };
}

/// <summary>One call of a tool (a function) by the model: its id, the function's name and its arguments as JSON text.</summary>
public sealed record ChatToolCall(string Id, string Name, string Arguments);
