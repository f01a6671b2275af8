using System.Text.Json;
using KvSharp.Templates;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatMessage = KvSharp.Templates.ChatMessage;

namespace KvSharp.Extensions.AI;

/// <summary>
/// Microsoft.Extensions.AI's tools in KvSharp's terms: <see cref="AIFunctionDeclaration"/>s as the OpenAI-shaped tool
/// list a chat template renders, a reply's calls (<see cref="ToolCallSyntax"/>) as <see cref="FunctionCallContent"/>,
/// and function calls and results in the messages as a template's tool_calls and tool turns. A mode that requires a
/// call (<see cref="ChatToolMode.RequireAny"/>, <see cref="ChatToolMode.RequireSpecific"/>) forces one
/// (<see cref="Forced"/>). A tool that is not a function, and a template without a syntax KvSharp reads, are refused
/// by name: ignoring the tools would answer as if none had been given.
/// </summary>
internal sealed record ChatToolMapping(JsonElement Definitions, ToolCallSyntax Syntax, ForcedToolCall? Forced)
{
    /// <summary>The most calls a reply may make: 1 where <see cref="ChatOptions.AllowMultipleToolCalls"/> is false (later ones are dropped).</summary>
    public int MaxCalls { get; init; } = int.MaxValue;

    /// <summary>The tools to render and read, or null when the options give none (or <see cref="ChatToolMode.None"/>).</summary>
    public static ChatToolMapping? Of(ChatOptions? options, ChatTemplate template)
    {
        if (options?.Tools is not { Count: > 0 } tools || options.ToolMode is NoneChatToolMode) return null;
        var list = new List<object>();
        foreach (var tool in tools)
        {
            if (tool is not AIFunctionDeclaration f)
                throw new NotSupportedException($"ChatOptions.Tools holds {tool.GetType().Name} '{tool.Name}': KvSharpChatClient calls functions (AIFunctionDeclaration) only");
            list.Add(new Dictionary<string, object?>
            {
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?> { ["name"] = f.Name, ["description"] = f.Description, ["parameters"] = f.JsonSchema },
            });
        }
        var syntax = ToolCallSyntax.Of(template) ?? throw new NotSupportedException(
            $"ChatOptions.Tools need a chat template that shows a tool-call syntax KvSharp reads ({ToolCallSyntax.Supported}); '{template.Name}' shows none");
        var definitions = JsonSerializer.SerializeToElement(list, AIJsonUtilities.DefaultOptions);
        int maxCalls = options.AllowMultipleToolCalls == false ? 1 : int.MaxValue;
        if (options.ToolMode is not RequiredChatToolMode required) return new ChatToolMapping(definitions, syntax, null) { MaxCalls = maxCalls };
        if (required.RequiredFunctionName is { } function && tools.All(t => t.Name != function))
            throw new ArgumentException($"ChatOptions.ToolMode requires a call to '{function}', which is not among ChatOptions.Tools ({string.Join(", ", tools.Select(t => t.Name))})", nameof(options));
        try
        {
            return new ChatToolMapping(definitions, syntax, syntax.Force(definitions, required.RequiredFunctionName)) { MaxCalls = maxCalls };
        }
        catch (ArgumentException e)
        {
            throw new NotSupportedException($"ChatOptions.ToolMode requires a call{(required.RequiredFunctionName is { } name ? $" to '{name}'" : "")}, " +
                                            $"which KvSharpChatClient cannot hold {syntax.Name} tool calls to: {e.Message}", e);
        }
    }

    /// <summary>What the template gets: the tools.</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables => new Dictionary<string, object?> { ["tools"] = Definitions };

    /// <summary>
    /// The reply's text outside its calls, and its calls, read as <see cref="ToolCallSyntax.ReadCalls"/> reads them; a
    /// reply without calls is its text as generated.
    /// </summary>
    public ToolCallReply Read(string text, string textWithSpecialTokens, ReplySplitting? reasoning) =>
        Syntax.ReadCalls(textWithSpecialTokens, Definitions, reasoning, Forced, MaxCalls) ?? new ToolCallReply(text, []);

    /// <summary>A call as Microsoft.Extensions.AI's content, its arguments a dictionary of JSON values.</summary>
    public static FunctionCallContent ToContent(ChatToolCall call)
    {
        Dictionary<string, object?>? arguments;
        try
        {
            arguments = JsonSerializer.Deserialize<Dictionary<string, object?>>(call.Arguments, AIJsonUtilities.DefaultOptions);
        }
        catch (JsonException e)
        {
            return new FunctionCallContent(call.Id, call.Name) { Exception = e };
        }
        return new FunctionCallContent(call.Id, call.Name, arguments);
    }

    /// <summary>
    /// One message as the template sees it: its text and reasoning; an assistant's function calls as tool_calls; a message's function
    /// results (function invocation puts those of parallel calls in one message) as a tool turn each, the result as
    /// text, or as JSON. Other content is refused, not dropped.
    /// </summary>
    public static IEnumerable<ChatMessage> FromMessage(AIChatMessage m)
    {
        if (m.Contents.FirstOrDefault(c => c is not (TextContent or TextReasoningContent or FunctionCallContent or FunctionResultContent)) is { } other)
            throw new NotSupportedException($"a {m.Role} message holds {other.GetType().Name}: KvSharpChatClient renders text, reasoning, function calls and function results only");
        var results = m.Contents.OfType<FunctionResultContent>().ToList();
        if (results.Count > 0)
        {
            if (m.Contents.Any(c => c is FunctionCallContent))
                throw new NotSupportedException($"a {m.Role} message holds both function calls and function results: send the results in a tool message of their own");
            return [.. results.Select(r => ChatMessage.Tool(ResultText(r.Result), r.CallId))];
        }
        var calls = m.Contents.OfType<FunctionCallContent>()
            .Select(c => new ChatToolCall(c.CallId, c.Name, JsonSerializer.Serialize(c.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)))
            .ToList();
        // A reply's reasoning sent back: the template gets it (gpt-oss's renders it beside a tool call).
        var reasoning = m.Contents.OfType<TextReasoningContent>().Select(r => r.Text).ToList();
        return [new ChatMessage(calls.Count > 0 ? "assistant" : m.Role.Value, m.Text)
        {
            ToolCalls = calls.Count > 0 ? calls : null,
            Reasoning = reasoning.Count > 0 ? string.Concat(reasoning) : null,
        }];
    }

    private static string ResultText(object? result) => result switch
    {
        null => "",
        string s => s,
        JsonElement e when e.ValueKind == JsonValueKind.String => e.GetString()!,
        JsonElement e => e.GetRawText(),
        _ => JsonSerializer.Serialize(result, AIJsonUtilities.DefaultOptions),
    };
}
