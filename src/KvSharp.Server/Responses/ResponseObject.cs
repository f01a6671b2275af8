using System.Text.Json.Serialization;

namespace KvSharp.Server.Responses;

/// <summary>
/// A response, as <c>POST /v1/responses</c> returns it and its stream's <c>response.created</c> and
/// <c>response.completed</c> events carry it: "status" in_progress, completed, or incomplete (with why).
/// </summary>
public sealed record ResponseObject(
    string Id,
    string Object,
    long CreatedAt,
    string Status,
    string Model,
    List<ResponseItem> Output,
    ResponseUsage? Usage,
    IncompleteDetails? IncompleteDetails,
    string? Instructions,
    string? PreviousResponseId,
    int? MaxOutputTokens,
    float? Temperature,
    float? TopP,
    bool ParallelToolCalls,
    bool Store,
    Dictionary<string, string> Metadata,
    ResponseError? Error = null,
    string Truncation = "disabled");

/// <summary>Why a response is incomplete: "max_output_tokens" (the length limit or the end of the context).</summary>
public sealed record IncompleteDetails(string Reason);

public sealed record ResponseError(string Code, string Message);

/// <summary>
/// One output item: a message (role "assistant", output_text parts), a function call (call_id, name, arguments), or
/// reasoning (reasoning_text parts); a field an item does not have is left out.
/// </summary>
public sealed record ResponseItem(
    string Type,
    string Id,
    string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] List<ResponseContent>? Content = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? CallId = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Arguments = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] List<ResponseContent>? Summary = null);

/// <summary>A part of an item's content: output_text (with its annotations, always none here) or reasoning_text.</summary>
public sealed record ResponseContent(
    string Type,
    string Text,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string[]? Annotations = null);

public sealed record ResponseUsage(int InputTokens, InputTokensDetails InputTokensDetails, int OutputTokens, OutputTokensDetails OutputTokensDetails, int TotalTokens);

/// <summary>cached_tokens: the input tokens the prefix cache served.</summary>
public sealed record InputTokensDetails(int CachedTokens);

/// <summary>reasoning_tokens: the output tokens of the reply's thinking (its reasoning text tokenized).</summary>
public sealed record OutputTokensDetails(int ReasoningTokens);

/// <summary><c>DELETE /v1/responses/{id}</c>'s answer.</summary>
public sealed record ResponseDeleted(string Id, string Object, bool Deleted);
