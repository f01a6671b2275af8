using System.Text.Json;
using KvSharp.Server.Errors;
using KvSharp.Templates;

namespace KvSharp.Server.Chat;

/// <summary>
/// A request's messages as the chat template's messages, and rendered: roles as OpenAI names them (developer is
/// the newer name for system), content as a string or text parts. Anything else is a 400 naming the message and
/// field at fault, e.g. <c>messages[2].role</c>.
/// </summary>
internal static class ChatPrompt
{
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];

    public static List<ChatMessage> Messages(List<ChatRequestMessage?>? messages)
    {
        if (messages == null) throw ApiError.Missing("messages");
        if (messages.Count == 0) throw ApiError.InvalidValue("messages", "messages must hold at least one message");
        var result = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw ApiError.InvalidType($"messages[{i}]", $"messages[{i}] must be an object with a role and content");
            string param = $"messages[{i}]";
            string role = m.Role switch
            {
                null => throw ApiError.Missing($"{param}.role"),
                "developer" => "system",
                _ when Roles.Contains(m.Role) => m.Role,
                _ => throw ApiError.InvalidValue($"{param}.role",
                    $"{param}.role '{m.Role}' is not supported; use one of {string.Join(", ", Roles)}"),
            };
            var message = new ChatMessage(role, Content(m.Content, role, param));
            if (role == "tool")
                message = message with
                {
                    ToolCallId = m.ToolCallId ?? throw ApiError.Missing($"{param}.tool_call_id"),
                    Name = m.Name,
                };
            if (m.ReasoningContent != null && role == "assistant") message = message with { Reasoning = m.ReasoningContent };
            if (m.ToolCalls is { Count: > 0 } calls)
            {
                if (role != "assistant") throw ApiError.InvalidValue($"{param}.tool_calls", $"{param}.tool_calls belong to an assistant message, not a {role} one");
                message = message with { ToolCalls = [.. calls.Select((c, j) => ToolCall(c, $"{param}.tool_calls[{j}]"))] };
            }
            result.Add(message);
        }
        return result;
    }

    /// <summary>One tool call an assistant message carries: its id, the function's name, and its arguments (JSON text, or an object given as one).</summary>
    private static ChatToolCall ToolCall(ChatRequestToolCall? call, string param)
    {
        if (call == null) throw ApiError.InvalidType(param, $"{param} must be an object with an id and a function");
        if (call.Type is not (null or "function")) throw ApiError.InvalidValue($"{param}.type", $"{param}.type must be \"function\"");
        var function = call.Function ?? throw ApiError.Missing($"{param}.function");
        if (string.IsNullOrEmpty(function.Name)) throw ApiError.Missing($"{param}.function.name");
        string arguments = function.Arguments.ValueKind switch
        {
            JsonValueKind.String => function.Arguments.GetString()!,
            JsonValueKind.Object => function.Arguments.GetRawText(),
            JsonValueKind.Undefined or JsonValueKind.Null => "{}",
            _ => throw ApiError.InvalidType($"{param}.function.arguments", $"{param}.function.arguments must be a JSON string (or an object)"),
        };
        return new ChatToolCall(call.Id ?? throw ApiError.Missing($"{param}.id"), function.Name, arguments);
    }

    /// <summary>
    /// A string, or text parts joined by "\n" (as vLLM joins them); null only for an assistant (OpenAI allows it
    /// beside tool calls), read as empty.
    /// </summary>
    private static string Content(JsonElement content, string role, string param)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Undefined or JsonValueKind.Null when role == "assistant":
                return "";
            case JsonValueKind.Undefined or JsonValueKind.Null:
                throw ApiError.Missing($"{param}.content");
            case JsonValueKind.Array:
                var texts = new List<string>(content.GetArrayLength());
                int j = 0;
                foreach (var part in content.EnumerateArray())
                {
                    string partParam = $"{param}.content[{j++}]";
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                        throw ApiError.InvalidType(partParam, $"{partParam} must be an object with a \"type\"");
                    if (type.GetString() != "text")
                        throw ApiError.Unsupported($"{partParam}.type", $"{partParam} has type '{type.GetString()}'; only \"text\" parts are supported (this model reads text)");
                    if (!part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                        throw ApiError.InvalidType($"{partParam}.text", $"{partParam}.text must be a string");
                    texts.Add(text.GetString()!);
                }
                return string.Join('\n', texts);
            default:
                throw ApiError.InvalidType($"{param}.content", $"{param}.content must be a string or an array of text parts, got a {content.ValueKind}");
        }
    }

    /// <summary>Renders with the served template; a template that refuses the conversation (raise_exception) is the caller's 400.</summary>
    public static RenderedChat Render(ChatTemplate template, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, KvSharp.Tokenization.ITokenizer tokenizer,
        IReadOnlyDictionary<string, object?>? variables = null)
    {
        try
        {
            return template.Render(messages, addGenerationPrompt, tokenizer, variables);
        }
        catch (TemplateException e)
        {
            throw ApiError.InvalidValue("messages", $"the chat template '{template.Name}' refused these messages: {e.Message}");
        }
    }
}
