using System.Text.Json;
using KvSharp.Server.Errors;
using KvSharp.Templates;

namespace KvSharp.Server.Chat;

/// <summary>
/// A chat request's tools: checked, handed to the chat template (which renders them as its model was trained to
/// read them), and the reply read for calls in the syntax of the template's family (<see cref="ToolCallSyntax"/>).
/// tool_choice "auto" (the default) lets the model choose; "none" renders no tools and reads no calls; "required" or
/// a named function forces one call (<see cref="Forced"/>: the reply is begun in the family's syntax and held to the
/// tools' parameter schemas). A template that shows no syntax kvsharp reads is refused rather than answered as if no
/// tools had been sent, and so is a forced call whose schemas use what a constrained reply does not enforce.
/// </summary>
internal sealed record ChatTools(JsonElement Definitions, ToolCallSyntax Syntax, ForcedToolCall? Forced)
{
    /// <summary>The most calls a reply may make: 1 where the request says parallel_tool_calls false (later ones are dropped).</summary>
    public int MaxCalls { get; init; } = int.MaxValue;

    /// <summary>The request's tools to render and read, or null when it has none (or asks for none).</summary>
    public static ChatTools? Of(ChatCompletionRequest body, ChatTemplate template)
    {
        var tools = body.Tools;
        if (tools.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return CheckChoiceWithoutTools(body.ToolChoice);
        if (tools.ValueKind != JsonValueKind.Array) throw ApiError.InvalidType("tools", $"tools must be an array of {{\"type\": \"function\", \"function\": {{...}}}}, got a {tools.ValueKind}");
        int i = 0;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tool in tools.EnumerateArray()) names.Add(CheckTool(tool, $"tools[{i++}]"));
        var (use, forced, function) = ChoiceOf(body.ToolChoice);
        if (function != null && !names.Contains(function))
            throw ApiError.InvalidValue("tool_choice", $"tool_choice names the function '{function}', which is not among the tools ({string.Join(", ", names)})");
        if (i == 0 && forced) throw ApiError.InvalidValue("tool_choice", $"tool_choice {ChatRefusedFields.Short(body.ToolChoice)} asks for a call, but tools is empty");
        if (i == 0 || !use) return null;
        var syntax = ToolCallSyntax.Of(template) ?? throw ApiError.Unsupported("tools",
            $"tools need a chat template that shows a tool-call syntax kvsharp reads ({ToolCallSyntax.Supported}); '{template.Name}' shows none: serve with the template of such a model (--chat-template FILE)");
        int maxCalls = body.ParallelToolCalls == false ? 1 : int.MaxValue;
        if (!forced) return new ChatTools(tools.Clone(), syntax, null) { MaxCalls = maxCalls };
        try
        {
            return new ChatTools(tools.Clone(), syntax, syntax.Force(tools, function)) { MaxCalls = maxCalls };
        }
        catch (ArgumentException e)
        {
            throw ApiError.Unsupported("tool_choice", $"tool_choice {ChatRefusedFields.Short(body.ToolChoice)} cannot be held to with {syntax.Name} tool calls: {e.Message}");
        }
    }

    /// <summary>What the template gets: the tools as given.</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables => new Dictionary<string, object?> { ["tools"] = Definitions };

    private static ChatTools? CheckChoiceWithoutTools(JsonElement choice)
    {
        if (choice.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null) && !IsChoice(choice, "none") && !IsChoice(choice, "auto"))
            throw ApiError.InvalidValue("tool_choice", $"tool_choice {ChatRefusedFields.Short(choice)} names a tool but the request has no tools");
        return null;
    }

    /// <summary>
    /// tool_choice read: whether tools are rendered (absent, "auto", "required" or a function; not "none"), whether a
    /// call is forced, and the function it must call where one is named.
    /// </summary>
    private static (bool Use, bool Forced, string? Function) ChoiceOf(JsonElement choice)
    {
        if (choice.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null || IsChoice(choice, "auto")) return (true, false, null);
        if (IsChoice(choice, "none")) return (false, false, null);
        if (IsChoice(choice, "required")) return (true, true, null);
        if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function"
            && choice.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object
            && function.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(name.GetString()))
            return (true, true, name.GetString());
        throw ApiError.InvalidValue("tool_choice", $"tool_choice must be \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, got {ChatRefusedFields.Short(choice)}");
    }

    private static bool IsChoice(JsonElement choice, string value) => choice.ValueKind == JsonValueKind.String && choice.GetString() == value;

    /// <summary>Checks one tool; returns its function's name.</summary>
    private static string CheckTool(JsonElement tool, string param)
    {
        if (tool.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType(param, $"{param} must be an object {{\"type\": \"function\", \"function\": {{...}}}}");
        if (!tool.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
            throw ApiError.InvalidValue($"{param}.type", $"{param}.type must be \"function\" (the only tool type)");
        if (!tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidType($"{param}.function", $"{param}.function must be an object with a name");
        if (!function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(name.GetString()))
            throw ApiError.InvalidValue($"{param}.function.name", $"{param}.function.name must be a non-empty string");
        if (function.TryGetProperty("parameters", out var parameters) && parameters.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
            throw ApiError.InvalidType($"{param}.function.parameters", $"{param}.function.parameters must be a JSON schema object");
        return name.GetString()!;
    }
}
