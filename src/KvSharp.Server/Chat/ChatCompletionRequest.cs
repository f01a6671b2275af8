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
    // Function calling and structured output are not supported; these fields are read only to refuse them
    // (ChatRefusedFields) rather than silently answer as if they had not been sent.
    public JsonElement Tools { get; set; }
    public JsonElement ToolChoice { get; set; }
    public JsonElement Functions { get; set; }
    public JsonElement FunctionCall { get; set; }
    public JsonElement ResponseFormat { get; set; }
}

/// <summary>One message: a role and its content, a string or an array of <c>{"type": "text", "text"}</c> parts.</summary>
public sealed class ChatRequestMessage
{
    public string? Role { get; set; }
    public JsonElement Content { get; set; }
    /// <summary>Accepted and not rendered (chat templates have no place for it).</summary>
    public string? Name { get; set; }
}
