using System.Text.Json;

namespace KvSharp.Server.Responses;

/// <summary>
/// OpenAI's <c>POST /v1/responses</c> body: the input (a string, or a list of items: messages, function calls and their
/// outputs), instructions, an earlier response to continue, and how to sample and stop. Fields that would change the
/// reply and that this server does not do are read only to refuse them by name (<see cref="ResponsesInput"/>).
/// </summary>
public sealed class ResponsesRequest
{
    public string? Model { get; set; }
    /// <summary>A string (one user message) or a list of items.</summary>
    public JsonElement Input { get; set; }
    /// <summary>A system message ahead of the input, for this response only (not carried to one that continues it).</summary>
    public string? Instructions { get; set; }
    /// <summary>The id of an earlier stored response whose conversation (its input and output) this input continues.</summary>
    public string? PreviousResponseId { get; set; }
    public int? MaxOutputTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    /// <summary>Function tools: <c>[{"type": "function", "name", "description", "parameters"}]</c>.</summary>
    public JsonElement Tools { get; set; }
    /// <summary>"auto", "none", "required", or <c>{"type": "function", "name"}</c>.</summary>
    public JsonElement ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    /// <summary><c>{"format": {"type": "text" | "json_object" | "json_schema", "name", "schema", "strict"}}</c>.</summary>
    public JsonElement Text { get; set; }
    /// <summary><c>{"effort": "low" | ...}</c>: given to the chat template as reasoning_effort (gpt-oss's reads it).</summary>
    public JsonElement Reasoning { get; set; }
    public bool? Stream { get; set; }
    /// <summary>Keep the response (default true): it can then be read back, and continued by previous_response_id.</summary>
    public bool? Store { get; set; }
    /// <summary>Kept with the response and returned as given (at most 16 string pairs).</summary>
    public Dictionary<string, string>? Metadata { get; set; }
    /// <summary>Accepted and ignored: they change nothing generated.</summary>
    public string? User { get; set; }
    public string? SafetyIdentifier { get; set; }
    public string? PromptCacheKey { get; set; }
    public string? ServiceTier { get; set; }
    // What this server does not do, read only to refuse it (unless neutral).
    public JsonElement Background { get; set; }
    public JsonElement Include { get; set; }
    public JsonElement Truncation { get; set; }
    public JsonElement TopLogprobs { get; set; }
    public JsonElement Conversation { get; set; }
    public JsonElement Prompt { get; set; }
    public JsonElement MaxToolCalls { get; set; }
}
