using System.Text.Json;
using KvSharp.Server.Chat;
using KvSharp.Server.Generation;
using KvSharp.Server.Json;
using KvSharp.Tokenization;

namespace KvSharp.Server.Responses;

/// <summary>
/// A finished reply as the Responses API shows it: its thinking as a reasoning item, its text as an assistant
/// message, each call as a function_call item; "incomplete" where the length limit (or the context) cut it. And the
/// reply as the assistant turn a continuing response's conversation carries.
/// </summary>
internal static class ResponseOutput
{
    public static string NewId(string prefix) => $"{prefix}_{Guid.NewGuid():N}";

    /// <summary>
    /// The request header a router sets to the tag it knows this replica by (a-z, 0-9, at most 16): a response's id
    /// then carries it (<c>resp_TAG_...</c>), so the router sends what continues, reads or deletes that response back
    /// here, where it is stored. Anything else in the header is ignored.
    /// </summary>
    public const string RouteHeader = "x-kvsharp-route";

    /// <summary>A new response's id, with the router's tag for this replica when the request carried a valid one.</summary>
    public static string NewResponseId(Microsoft.AspNetCore.Http.HttpRequest request) =>
        request.Headers[RouteHeader].ToString() is { Length: > 0 and <= 16 } tag && tag.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c))
            ? NewId($"resp_{tag}") : NewId("resp");

    /// <summary>The response once its reply is whole.</summary>
    public static ResponseObject Complete(ResponseObject shell, ChatReply reply, Usage usage, ITokenizer tokenizer)
    {
        bool cut = reply.FinishReason == "length";
        var items = new List<ResponseItem>();
        if (!string.IsNullOrEmpty(reply.Reasoning)) items.Add(Reasoning(NewId("rs"), reply.Reasoning));
        if (!string.IsNullOrEmpty(reply.Content) || reply.ToolCalls.Count == 0) items.Add(Message(NewId("msg"), reply.Content ?? "", cut));
        items.AddRange(reply.ToolCalls.Select(c => Call(NewId("fc"), c.Id, c.Name, c.Arguments)));
        return Finished(shell, items, usage, ReasoningTokens(tokenizer, reply.Reasoning), cut);
    }

    /// <summary>The response with its output, usage and status set.</summary>
    public static ResponseObject Finished(ResponseObject shell, List<ResponseItem> items, Usage usage, int reasoningTokens, bool cut) => shell with
    {
        Status = cut ? "incomplete" : "completed",
        Output = items,
        Usage = new ResponseUsage(usage.PromptTokens, new InputTokensDetails(usage.PromptTokensDetails.CachedTokens), usage.CompletionTokens,
            new OutputTokensDetails(reasoningTokens), usage.TotalTokens),
        IncompleteDetails = cut ? new IncompleteDetails("max_output_tokens") : null,
    };

    /// <summary>The reply's thinking counted in tokens (the text tokenized again: the template's markers around it are not counted).</summary>
    public static int ReasoningTokens(ITokenizer tokenizer, string? reasoning) =>
        string.IsNullOrEmpty(reasoning) ? 0 : tokenizer.Encode(reasoning, addSpecial: false, parseSpecial: false).Length;

    public static ResponseItem Message(string id, string text, bool cut) =>
        new("message", id, cut ? "incomplete" : "completed", Role: "assistant", Content: [new ResponseContent("output_text", text, [])]);

    public static ResponseItem Reasoning(string id, string text) =>
        new("reasoning", id, "completed", Content: [new ResponseContent("reasoning_text", text)], Summary: []);

    public static ResponseItem Call(string id, string callId, string name, string arguments) =>
        new("function_call", id, "completed", CallId: callId, Name: name, Arguments: arguments);

    /// <summary>The reply as the assistant turn of the conversation a later response continues.</summary>
    public static ChatRequestMessage AssistantTurn(ChatReply reply) => new()
    {
        Role = "assistant",
        Content = JsonSerializer.SerializeToElement(reply.Content ?? "", ServerJson.Default.String),
        ReasoningContent = reply.Reasoning,
        ToolCalls = reply.ToolCalls.Count == 0 ? null : [.. reply.ToolCalls.Select(c => (ChatRequestToolCall?)new ChatRequestToolCall
        {
            Id = c.Id,
            Type = "function",
            Function = new ChatRequestFunctionCall { Name = c.Name, Arguments = JsonSerializer.SerializeToElement(c.Arguments, ServerJson.Default.String) },
        })],
    };
}
