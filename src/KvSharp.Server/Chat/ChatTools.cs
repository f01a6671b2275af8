using System.Text.Json;
using KvSharp.Server.Errors;
using KvSharp.Templates;

namespace KvSharp.Server.Chat;

/// <summary>
/// A chat request's tools: checked, handed to the chat template (which renders them as its model was trained to
/// read them), and the reply read for calls in the syntax of the template's family (<see cref="ToolCallSyntax"/>).
/// tool_choice "auto" (the default) lets the model choose; "none" renders no tools and reads no calls. A forced call
/// ("required" or a named function) is refused: holding a model to one needs constrained decoding, which kvsharp does
/// not have, and a reply without the call would break the contract silently. So is a template that shows no syntax
/// kvsharp reads, rather than answering as if no tools had been sent.
/// </summary>
internal sealed record ChatTools(JsonElement Definitions, ToolCallSyntax Syntax)
{
    /// <summary>The request's tools to render and read, or null when it has none (or asks for none).</summary>
    public static ChatTools? Of(ChatCompletionRequest body, ChatTemplate template)
    {
        var tools = body.Tools;
        if (tools.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return CheckChoiceWithoutTools(body.ToolChoice);
        if (tools.ValueKind != JsonValueKind.Array) throw ApiError.InvalidType("tools", $"tools must be an array of {{\"type\": \"function\", \"function\": {{...}}}}, got a {tools.ValueKind}");
        int i = 0;
        foreach (var tool in tools.EnumerateArray()) CheckTool(tool, $"tools[{i++}]");
        if (i == 0 || !UsesTools(body.ToolChoice)) return null;
        var syntax = ToolCallSyntax.Of(template) ?? throw ApiError.Unsupported("tools",
            $"tools need a chat template that shows a tool-call syntax kvsharp reads ({ToolCallSyntax.Supported}); '{template.Name}' shows none: serve with the template of such a model (--chat-template FILE)");
        return new ChatTools(tools.Clone(), syntax);
    }

    /// <summary>What the template gets: the tools as given.</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables => new Dictionary<string, object?> { ["tools"] = Definitions };

    private static ChatTools? CheckChoiceWithoutTools(JsonElement choice)
    {
        if (choice.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null) && !IsChoice(choice, "none") && !IsChoice(choice, "auto"))
            throw ApiError.InvalidValue("tool_choice", $"tool_choice {ChatRefusedFields.Short(choice)} names a tool but the request has no tools");
        return null;
    }

    /// <summary>Whether tools are rendered: tool_choice absent or "auto"; false for "none"; a forced call is refused.</summary>
    private static bool UsesTools(JsonElement choice)
    {
        if (choice.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null || IsChoice(choice, "auto")) return true;
        if (IsChoice(choice, "none")) return false;
        if (IsChoice(choice, "required") || choice.ValueKind == JsonValueKind.Object)
            throw ApiError.Unsupported("tool_choice",
                $"tool_choice {ChatRefusedFields.Short(choice)} is not supported: kvsharp cannot force a tool call (no constrained decoding); use \"auto\" or \"none\"");
        throw ApiError.InvalidValue("tool_choice", $"tool_choice must be \"auto\", \"none\", \"required\" or a function, got {ChatRefusedFields.Short(choice)}");
    }

    private static bool IsChoice(JsonElement choice, string value) => choice.ValueKind == JsonValueKind.String && choice.GetString() == value;

    private static void CheckTool(JsonElement tool, string param)
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
    }
}
