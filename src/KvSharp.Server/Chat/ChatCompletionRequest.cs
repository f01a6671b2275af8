using System.Text.Json;
using KvSharp.Server.Generation;

namespace KvSharp.Server.Chat;

/// <summary>OpenAI's <c>POST /v1/chat/completions</c> body (the shared fields are in <see cref="SamplingParameters"/>).</summary>
public sealed class ChatCompletionRequest : SamplingParameters
{
    public List<ChatRequestMessage?>? Messages { get; set; }
    /// <summary>OpenAI's newer name for max_tokens; max_tokens wins when both are given.</summary>
    public int? MaxCompletionTokens { get; set; }
    /// <summary>Report each generated token's log-probability.</summary>
    public bool? Logprobs { get; set; }
    /// <summary>And those of this many most likely alternatives (0 to 20; needs logprobs: true).</summary>
    public int? TopLogprobs { get; set; }
    /// <summary>
    /// kvsharp's: the id of an earlier chat completion of this server (one choice) that these messages continue; where
    /// the rendered prompt starts with that request's prompt and reply, those are the token ids it used and generated
    /// (<see cref="Continuations.PromptContinuation.TokenizeChat"/>).
    /// </summary>
    public string? Continues { get; set; }
    /// <summary>Functions the model may call (<see cref="ChatTools"/>): <c>[{"type": "function", "function": {"name", "description", "parameters"}}]</c>.</summary>
    public JsonElement Tools { get; set; }
    /// <summary>"auto" (the default with tools), "none", or a forced call: "required" or a named function (<see cref="ChatTools"/>).</summary>
    public JsonElement ToolChoice { get; set; }
    /// <summary>Accepted: with tool_choice "auto" a reply may hold several calls whatever it says; a forced call is always one.</summary>
    public bool? ParallelToolCalls { get; set; }
    /// <summary>
    /// llama-server's: "auto" or "deepseek" (the default) gives a thinking model's <c>&lt;think&gt;</c> block as
    /// <c>reasoning_content</c>, apart from the answer; "none" leaves it in the content.
    /// </summary>
    public string? ReasoningFormat { get; set; }
    /// <summary>
    /// OpenAI's: "none", "minimal", "low", "medium", "high" or "xhigh", passed to the chat template as the variable
    /// reasoning_effort (gpt-oss's template writes it into its system message; other templates ignore it).
    /// </summary>
    public string? ReasoningEffort { get; set; }
    /// <summary>llama-server's and vLLM's: variables the chat template gets by name (e.g. {"enable_thinking": false} for Qwen3).</summary>
    public JsonElement ChatTemplateKwargs { get; set; }
    // The deprecated function-calling fields and structured output are not supported; these fields are read only to
    // refuse them (ChatRefusedFields) rather than silently answer as if they had not been sent.
    public JsonElement Functions { get; set; }
    public JsonElement FunctionCall { get; set; }
    public JsonElement ResponseFormat { get; set; }
    // Output this server cannot make, read only to refuse it: audio replies, a web search.
    public JsonElement Modalities { get; set; }
    public JsonElement Audio { get; set; }
    public JsonElement WebSearchOptions { get; set; }
}

/// <summary>One message: a role and its content, a string or an array of <c>{"type": "text", "text"}</c> parts.</summary>
public sealed class ChatRequestMessage
{
    public string? Role { get; set; }
    public JsonElement Content { get; set; }
    /// <summary>A tool turn's tool name (some templates print it); on other turns accepted and not rendered.</summary>
    public string? Name { get; set; }
    /// <summary>An assistant turn's tool calls, as a chat completion returned them.</summary>
    public List<ChatRequestToolCall?>? ToolCalls { get; set; }
    /// <summary>A tool turn: the call it answers.</summary>
    public string? ToolCallId { get; set; }
    /// <summary>An assistant turn's reasoning, as a chat completion returned it; the template gets it (gpt-oss's keeps it beside a tool call).</summary>
    public string? ReasoningContent { get; set; }
}

/// <summary>One tool call of an assistant turn: <c>{"id", "type": "function", "function": {"name", "arguments"}}</c>.</summary>
public sealed class ChatRequestToolCall
{
    public string? Id { get; set; }
    public string? Type { get; set; }
    public ChatRequestFunctionCall? Function { get; set; }
}

/// <summary>The function a tool call names and its arguments: JSON text as OpenAI sends them (an object is accepted too).</summary>
public sealed class ChatRequestFunctionCall
{
    public string? Name { get; set; }
    public JsonElement Arguments { get; set; }
}
