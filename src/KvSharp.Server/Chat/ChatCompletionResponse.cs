using System.Text.Json.Serialization;
using KvSharp.Server.Generation;

namespace KvSharp.Server.Chat;

/// <summary>A whole chat completion: <c>"object": "chat.completion"</c>; vLLM's prompt_logprobs only when asked for, left out otherwise.</summary>
public sealed record ChatCompletionResponse(string Id, string Object, long Created, string Model, ChatChoice[] Choices, Usage Usage,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] List<Dictionary<string, RankedLogprob>?>? PromptLogprobs = null);

/// <summary>One choice: the assistant's message, its logprobs (null unless asked for) and why it ended.</summary>
public sealed record ChatChoice(int Index, ChatResponseMessage Message, ChatLogprobs? Logprobs, string FinishReason);

/// <summary>The assistant's reply: its text (null beside tool calls when it wrote none) and its tool calls, left out when none.</summary>
public sealed record ChatResponseMessage(string Role, string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatResponseToolCall[]? ToolCalls = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ReasoningContent = null);

/// <summary>
/// One tool call in OpenAI's shape; in a stream's delta it carries its index among the choice's calls, and only a
/// call's first delta its id, type and name (the ones after it a fragment of its arguments).
/// </summary>
public sealed record ChatResponseToolCall(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type,
    ChatResponseFunction Function);

/// <summary>The function called (left out of a streamed fragment) and its arguments as JSON text.</summary>
public sealed record ChatResponseFunction([property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name, string Arguments);

/// <summary>
/// One streamed chunk: <c>"object": "chat.completion.chunk"</c>, choices carrying a delta; the last chunk carries the
/// usage (and no choices) when stream_options.include_usage asks for it.
/// </summary>
public sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, ChatChunkChoice[] Choices, Usage? Usage);

/// <summary><see cref="FinishReason"/> null until the choice ends, as OpenAI sends it.</summary>
public sealed record ChatChunkChoice(int Index, ChatDelta Delta, ChatLogprobs? Logprobs, string? FinishReason);

/// <summary>The role comes once, in a choice's first chunk; absent fields are left out, not null, as OpenAI does.</summary>
public sealed record ChatDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatResponseToolCall[]? ToolCalls = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ReasoningContent = null);

/// <summary>OpenAI's chat logprobs: one entry per generated token.</summary>
public sealed record ChatLogprobs(ChatTokenLogprob[] Content);

/// <summary>A token's text, log-probability and UTF-8 bytes (a token may hold part of a character), and the likeliest alternatives'.</summary>
public sealed record ChatTokenLogprob(string Token, float Logprob, int[] Bytes, ChatTopLogprob[] TopLogprobs);

public sealed record ChatTopLogprob(string Token, float Logprob, int[] Bytes);
