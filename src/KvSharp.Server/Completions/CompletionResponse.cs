using System.Text.Json.Serialization;
using KvSharp.Server.Generation;

namespace KvSharp.Server.Completions;

/// <summary>
/// A completion, whole or as one streamed chunk (OpenAI uses the same shape, "object": "text_completion", for both;
/// a chunk carries the usage only in the last one, when stream_options.include_usage asks for it).
/// </summary>
public sealed record CompletionResponse(string Id, string Object, long Created, string Model, CompletionChoice[] Choices, Usage? Usage);

/// <summary>
/// One choice; <see cref="Logprobs"/> null unless asked for, <see cref="FinishReason"/> null until it ends;
/// <see cref="PromptLogprobs"/> (vLLM's) only when asked for, left out otherwise.
/// </summary>
public sealed record CompletionChoice(int Index, string Text, CompletionLogprobs? Logprobs, string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] List<Dictionary<string, RankedLogprob>?>? PromptLogprobs = null);

/// <summary>
/// OpenAI's completions logprobs, one entry per token (an echoed prompt's, then the generated ones): its text, its
/// log-probability, the most likely tokens' (text to log-probability), and where its text starts in the choice's text
/// as the tokens spell it. An echoed prompt's first token has no log-probability and no alternatives (null).
/// </summary>
public sealed record CompletionLogprobs(string[] Tokens, float?[] TokenLogprobs, Dictionary<string, float>?[] TopLogprobs, int[] TextOffset);
