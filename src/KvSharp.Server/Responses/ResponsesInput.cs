using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Server.Chat;
using KvSharp.Server.Errors;
using KvSharp.Server.Generation;
using KvSharp.Server.Json;

namespace KvSharp.Server.Responses;

/// <summary>
/// A Responses request as the chat request it amounts to: the earlier response's conversation, then the input's items
/// as chat messages (a message; a function call joins the assistant turn before it; its output is a tool turn), the
/// instructions as a system message ahead of them all; function tools, tool_choice and text.format in chat's shape.
/// What would change the reply and is not done here is refused by name: built-in tools, background mode, truncation
/// "auto", non-text input parts, and the like.
/// </summary>
internal static class ResponsesInput
{
    /// <summary>The chat request, and the conversation without the instructions (what a response that continues this one starts from).</summary>
    public static (ChatCompletionRequest Chat, List<ChatRequestMessage> Conversation) ToChat(ResponsesRequest r, IReadOnlyList<ChatRequestMessage>? previous)
    {
        RefuseUnsupported(r);
        var conversation = new List<ChatRequestMessage>(previous ?? []);
        int before = conversation.Count;
        AppendItems(conversation, r.Input);
        if (conversation.Count == before) throw ApiError.InvalidValue("input", "input must hold at least one item");
        var messages = new List<ChatRequestMessage?>(conversation.Count + 1);
        if (r.Instructions != null) messages.Add(new ChatRequestMessage { Role = "system", Content = Text(r.Instructions) });
        messages.AddRange(conversation);
        if (r.MaxOutputTokens is < 1) throw ApiError.InvalidValue("max_output_tokens", $"max_output_tokens must be at least 1, got {r.MaxOutputTokens}");
        var chat = new ChatCompletionRequest
        {
            Model = r.Model,
            Messages = messages,
            MaxTokens = r.MaxOutputTokens,
            Temperature = r.Temperature,
            TopP = r.TopP,
            Tools = Tools(r.Tools),
            ToolChoice = ToolChoice(r.ToolChoice),
            ParallelToolCalls = r.ParallelToolCalls,
            ResponseFormat = Format(r.Text),
            ReasoningEffort = Effort(r.Reasoning),
            Stream = r.Stream,
            // A stream's last event is the whole response with its usage.
            StreamOptions = r.Stream == true ? new StreamOptions { IncludeUsage = true } : null,
            // Where the conversation's rendering starts with the earlier response's prompt and reply, those are its ids.
            Continues = r.PreviousResponseId,
        };
        return (chat, conversation);
    }

    private static void RefuseUnsupported(ResponsesRequest r)
    {
        if (r.Background.ValueKind == JsonValueKind.True)
            throw ApiError.Unsupported("background", "background responses are not supported: leave background out (the response is answered on this request, or streamed)");
        if (r.Include.ValueKind == JsonValueKind.Array && r.Include.GetArrayLength() > 0)
            throw ApiError.Unsupported("include", $"include is not supported (nothing extra can be added to the output here): got {r.Include.GetRawText()}");
        if (OtherServersFields.Given(r.Truncation) && !(r.Truncation.ValueKind == JsonValueKind.String && r.Truncation.GetString() is "disabled" or "auto"))
            throw ApiError.InvalidValue("truncation", $"truncation must be \"disabled\" (an input longer than the context is refused) or \"auto\" (the conversation's oldest turns are dropped until it fits), got {r.Truncation.GetRawText()}");
        if (OtherServersFields.Given(r.TopLogprobs) && !(r.TopLogprobs.ValueKind == JsonValueKind.Number && r.TopLogprobs.GetDouble() == 0))
            throw ApiError.Unsupported("top_logprobs", "top_logprobs is not reported by /v1/responses here; use /v1/chat/completions with logprobs");
        if (OtherServersFields.Given(r.Conversation))
            throw ApiError.Unsupported("conversation", "conversation objects are not supported: continue a response with previous_response_id");
        if (OtherServersFields.Given(r.Prompt))
            throw ApiError.Unsupported("prompt", "stored prompt templates are not supported: send the input and instructions themselves");
        if (OtherServersFields.Given(r.MaxToolCalls))
            throw ApiError.Unsupported("max_tool_calls", "max_tool_calls is not supported; parallel_tool_calls false keeps one call");
        if (r.Metadata is { Count: > 16 }) throw ApiError.InvalidValue("metadata", $"metadata holds at most 16 pairs, got {r.Metadata.Count}");
    }

    /// <summary>Whether the request asks for truncation "auto".</summary>
    public static bool TruncatesAuto(ResponsesRequest r) => r.Truncation.ValueKind == JsonValueKind.String && r.Truncation.GetString() == "auto";

    /// <summary>
    /// truncation "auto": drops the conversation's oldest turn, from its first message that is not a system or
    /// developer message up to the next user message (an assistant turn goes with its calls' outputs, never leaving a
    /// tool result without its call), in <paramref name="conversation"/> and in the chat request's messages (after the
    /// instructions). The last user turn, this input's, is never dropped: false when nothing is left to drop.
    /// </summary>
    public static bool DropOldestTurn(ChatCompletionRequest chat, List<ChatRequestMessage> conversation)
    {
        int first = conversation.FindIndex(m => m.Role is not ("system" or "developer"));
        if (first < 0) return false;
        int next = conversation.FindIndex(first + 1, m => m.Role == "user");
        if (next < 0) return false;
        int instructions = chat.Messages!.Count - conversation.Count;
        conversation.RemoveRange(first, next - first);
        chat.Messages = [.. chat.Messages.Take(instructions), .. conversation];
        return true;
    }

    private static JsonElement Text(string text) => JsonSerializer.SerializeToElement(text, ServerJson.Default.String);

    /// <summary>Appends the input's items as chat messages: a string is one user message.</summary>
    private static void AppendItems(List<ChatRequestMessage> messages, JsonElement input)
    {
        switch (input.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                throw ApiError.Missing("input");
            case JsonValueKind.String:
                messages.Add(new ChatRequestMessage { Role = "user", Content = input });
                return;
            case JsonValueKind.Array:
                break;
            default:
                throw ApiError.InvalidType("input", $"input must be a string or a list of items, got a {input.ValueKind}");
        }
        string? reasoning = null;
        int i = 0;
        foreach (var item in input.EnumerateArray())
        {
            string param = $"input[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType(param, $"{param} must be an object (a message, a function_call or a function_call_output)");
            string type = String(item, "type", param, required: false) ?? (item.TryGetProperty("role", out _) ? "message" : throw ApiError.Missing($"{param}.type"));
            switch (type)
            {
                case "message":
                    string role = String(item, "role", param)!;
                    if (role is not ("user" or "system" or "developer" or "assistant"))
                        throw ApiError.InvalidValue($"{param}.role", $"{param}.role '{role}' is not supported; use user, system, developer or assistant");
                    var message = new ChatRequestMessage { Role = role, Content = Text(Content(item, param)) };
                    if (role == "assistant" && reasoning != null) (message.ReasoningContent, reasoning) = (reasoning, null);
                    messages.Add(message);
                    break;
                case "function_call":
                    var call = new ChatRequestToolCall
                    {
                        Id = String(item, "call_id", param),
                        Type = "function",
                        Function = new ChatRequestFunctionCall { Name = String(item, "name", param), Arguments = Text(String(item, "arguments", param, required: false) ?? "{}") },
                    };
                    // Calls join the assistant message before them (its text and calls are one turn, as a reply's output
                    // items are), or open one.
                    if (messages is [.., { Role: "assistant" } last]) messages[^1] = WithCall(last, call);
                    else messages.Add(new ChatRequestMessage { Role = "assistant", Content = Text(""), ToolCalls = [call], ReasoningContent = reasoning });
                    reasoning = null;
                    break;
                case "function_call_output":
                    string callId = String(item, "call_id", param)!;
                    string? name = messages.SelectMany(m => m.ToolCalls ?? []).LastOrDefault(c => c?.Id == callId)?.Function?.Name;
                    messages.Add(new ChatRequestMessage { Role = "tool", ToolCallId = callId, Name = name, Content = Text(Output(item, param)) });
                    break;
                case "reasoning":
                    // The model's own thinking from an earlier turn: the next assistant turn carries it (templates that show it do).
                    reasoning = Parts(item, "content", param, "reasoning_text") ?? Parts(item, "summary", param, "summary_text");
                    break;
                default:
                    throw ApiError.Unsupported($"{param}.type", $"{param}.type '{type}' is not supported; input items are messages, function_call, function_call_output and reasoning");
            }
        }
    }

    /// <summary>An assistant turn with one more call (a copy: the turn may be a stored response's).</summary>
    private static ChatRequestMessage WithCall(ChatRequestMessage turn, ChatRequestToolCall call) => new()
    {
        Role = turn.Role, Content = turn.Content, Name = turn.Name, ReasoningContent = turn.ReasoningContent, ToolCalls = [.. turn.ToolCalls ?? [], call],
    };

    private static string? String(JsonElement item, string field, string param, bool required = true)
    {
        if (item.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String) return value.GetString();
        if (item.TryGetProperty(field, out value) && value.ValueKind != JsonValueKind.Null)
            throw ApiError.InvalidType($"{param}.{field}", $"{param}.{field} must be a string, got a {value.ValueKind}");
        return required ? throw ApiError.Missing($"{param}.{field}") : null;
    }

    /// <summary>A message's content: a string, or text parts (input_text, output_text) joined by newlines; other parts refused.</summary>
    private static string Content(JsonElement item, string param)
    {
        if (!item.TryGetProperty("content", out var content)) throw ApiError.Missing($"{param}.content");
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw ApiError.InvalidType($"{param}.content", $"{param}.content must be a string or a list of parts");
        var texts = new List<string>();
        int j = 0;
        foreach (var part in content.EnumerateArray())
        {
            string partParam = $"{param}.content[{j++}]";
            if (part.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType(partParam, $"{partParam} must be an object {{\"type\": \"input_text\", \"text\"}}");
            string type = String(part, "type", partParam)!;
            if (type is not ("input_text" or "output_text" or "text" or "refusal"))
                throw ApiError.Unsupported($"{partParam}.type", $"{partParam}.type '{type}' is not supported: this server's models read text (input_text, output_text)");
            texts.Add(String(part, type == "refusal" ? "refusal" : "text", partParam)!);
        }
        return string.Join("\n", texts);
    }

    /// <summary>A function call's output: a string, or text parts joined by newlines.</summary>
    private static string Output(JsonElement item, string param)
    {
        if (!item.TryGetProperty("output", out var output)) throw ApiError.Missing($"{param}.output");
        if (output.ValueKind == JsonValueKind.String) return output.GetString()!;
        if (output.ValueKind != JsonValueKind.Array) throw ApiError.InvalidType($"{param}.output", $"{param}.output must be a string or a list of input_text parts");
        return Parts(item, "output", param, "input_text") ?? "";
    }

    /// <summary>The text of a list of parts of one type (joined by newlines); null when the field is absent.</summary>
    private static string? Parts(JsonElement item, string field, string param, string type)
    {
        if (!item.TryGetProperty(field, out var parts) || parts.ValueKind != JsonValueKind.Array) return null;
        var texts = new List<string>();
        int j = 0;
        foreach (var part in parts.EnumerateArray())
        {
            string partParam = $"{param}.{field}[{j++}]";
            if (part.ValueKind != JsonValueKind.Object || String(part, "type", partParam) != type)
                throw ApiError.InvalidValue(partParam, $"{partParam} must be {{\"type\": \"{type}\", \"text\"}}");
            texts.Add(String(part, "text", partParam)!);
        }
        return string.Join("\n", texts);
    }

    /// <summary>Function tools in chat's shape (<c>{"type": "function", "function": {...}}</c>); built-in tools are refused.</summary>
    private static JsonElement Tools(JsonElement tools)
    {
        if (tools.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return default;
        if (tools.ValueKind != JsonValueKind.Array) throw ApiError.InvalidType("tools", $"tools must be a list of {{\"type\": \"function\", \"name\", \"parameters\"}}, got a {tools.ValueKind}");
        var chat = new JsonArray();
        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            string param = $"tools[{i++}]";
            if (tool.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType(param, $"{param} must be an object {{\"type\": \"function\", \"name\", \"parameters\"}}");
            string type = String(tool, "type", param)!;
            if (type != "function")
                throw ApiError.Unsupported($"{param}.type", $"{param}.type '{type}' is not supported: this server runs no built-in tools; give functions (\"type\": \"function\") and run them yourself");
            string name = String(tool, "name", param)!;
            if (string.IsNullOrWhiteSpace(name)) throw ApiError.InvalidValue($"{param}.name", $"{param}.name must be a non-empty string");
            var function = new JsonObject { ["name"] = name };
            if (String(tool, "description", param, required: false) is { } description) function["description"] = description;
            if (tool.TryGetProperty("parameters", out var parameters) && parameters.ValueKind != JsonValueKind.Null)
            {
                if (parameters.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType($"{param}.parameters", $"{param}.parameters must be a JSON schema object");
                function["parameters"] = JsonNode.Parse(parameters.GetRawText());
            }
            chat.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }
        return JsonSerializer.SerializeToElement(chat, ServerJson.Default.JsonArray);
    }

    /// <summary>tool_choice in chat's shape: the strings as they are, <c>{"type": "function", "name"}</c> as chat names a function.</summary>
    private static JsonElement ToolChoice(JsonElement choice)
    {
        if (choice.ValueKind != JsonValueKind.Object) return choice;
        string? type = String(choice, "type", "tool_choice", required: false);
        if (type != "function")
            throw ApiError.Unsupported("tool_choice", $"tool_choice must be \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"name\"}}; got {choice.GetRawText()}");
        var chat = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = String(choice, "name", "tool_choice") } };
        return JsonSerializer.SerializeToElement(chat, ServerJson.Default.JsonObject);
    }

    /// <summary>text.format as chat's response_format: text, json_object, or json_schema (its name, schema and strict under "json_schema").</summary>
    private static JsonElement Format(JsonElement text)
    {
        if (text.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return default;
        if (text.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType("text", "text must be an object {\"format\": {...}}");
        if (text.TryGetProperty("verbosity", out var verbosity) && OtherServersFields.AsksForVerbosity(verbosity))
            throw ApiError.Unsupported("text.verbosity", OtherServersFields.VerbosityRefusal);
        if (!text.TryGetProperty("format", out var format) || format.ValueKind == JsonValueKind.Null) return default;
        if (format.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType("text.format", "text.format must be an object {\"type\": \"text\" | \"json_object\" | \"json_schema\"}");
        string type = String(format, "type", "text.format")!;
        var chat = type switch
        {
            "text" or "json_object" => new JsonObject { ["type"] = type },
            "json_schema" => new JsonObject
            {
                ["type"] = "json_schema",
                ["json_schema"] = new JsonObject
                {
                    ["name"] = String(format, "name", "text.format", required: false) ?? "response",
                    ["schema"] = format.TryGetProperty("schema", out var schema) ? JsonNode.Parse(schema.GetRawText()) : throw ApiError.Missing("text.format.schema"),
                },
            },
            _ => throw ApiError.InvalidValue("text.format.type", $"text.format.type must be \"text\", \"json_object\" or \"json_schema\", got '{type}'"),
        };
        return JsonSerializer.SerializeToElement(chat, ServerJson.Default.JsonObject);
    }

    private static string? Effort(JsonElement reasoning)
    {
        if (reasoning.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
        if (reasoning.ValueKind != JsonValueKind.Object) throw ApiError.InvalidType("reasoning", "reasoning must be an object {\"effort\": ...}");
        if (reasoning.TryGetProperty("summary", out var summary) && summary.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
            throw ApiError.Unsupported("reasoning.summary", "reasoning summaries are not written here: a reply's thinking comes whole as a reasoning item's reasoning_text");
        return String(reasoning, "effort", "reasoning", required: false);
    }

    /// <summary>
    /// Chat's field names in an error, as this request spells them: the chat request is this request's own, so an
    /// error about it is one about the field it came from.
    /// </summary>
    public static ApiError Renamed(ApiError e)
    {
        string? param = e.Param == null ? null : Rename(e.Param);
        if (e.Param != null && e.Param.StartsWith("messages", StringComparison.Ordinal)) param = "input"; // its messages are its input, and what came before it
        return param == e.Param ? e : new ApiError(e.Status, Rename(e.Message), e.Type, param, e.Code);
    }

    // Chat's names (longest first where one starts another) and this API's.
    private static readonly (string Chat, string Responses)[] Names =
    [
        ("response_format.json_schema.", "text.format."), ("response_format", "text.format"), ("max_tokens", "max_output_tokens"),
        ("reasoning_effort", "reasoning.effort"), ("continues", "previous_response_id"), (".function.", "."),
    ];

    private static string Rename(string text)
    {
        foreach (var (chat, responses) in Names) text = text.Replace(chat, responses, StringComparison.Ordinal);
        return text;
    }
}
