using System.Text;
using System.Text.Json;

namespace KvSharp.Router.Affinity;

/// <summary>
/// The text of an OpenAI request's prompt, in order, as the router keys it: for chat, each message's role and text
/// content (text parts of an array content), separated so "ab"+"c" and "a"+"bc" differ; for completions the prompt
/// (the first of several; token-id prompts as their decimal ids); for the Responses API its instructions, then its
/// input (a string, or each item's role and text, as messages). The tenant's <c>cache_salt</c> comes along, because
/// engines never share blocks across salts and so neither should routing; and a Responses request's
/// <c>previous_response_id</c>, which routes it to the replica that stored that response instead. A body that is not
/// such JSON gives empty text: the request is still forwarded, and the replica answers with its own error.
/// </summary>
public readonly record struct PromptText(string Text, string? Salt, string? PreviousResponseId = null)
{
    private const char Separator = '\u001e'; // record separator: cannot be confused with text a user typed

    public static PromptText Parse(ReadOnlySpan<byte> body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return default;
            string? salt = root.TryGetProperty("cache_salt", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            string? previous = root.TryGetProperty("previous_response_id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
            var text = new StringBuilder();
            if (root.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Array)
            {
                foreach (var m in messages.EnumerateArray())
                {
                    if (m.ValueKind != JsonValueKind.Object) continue;
                    if (m.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String) text.Append(role.GetString());
                    text.Append(Separator);
                    if (m.TryGetProperty("content", out var content)) AppendContent(text, content);
                    text.Append(Separator);
                }
            }
            else if (root.TryGetProperty("prompt", out var prompt)) AppendPrompt(text, prompt);
            else if (root.TryGetProperty("input", out var input)) AppendInput(text, root, input);
            return new PromptText(text.ToString(), salt, previous);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    /// <summary>The instructions as a system turn, then the input: a string as a user turn, items by their role (or type) and text.</summary>
    private static void AppendInput(StringBuilder text, JsonElement root, JsonElement input)
    {
        if (root.TryGetProperty("instructions", out var instructions) && instructions.ValueKind == JsonValueKind.String)
            text.Append("system").Append(Separator).Append(instructions.GetString()).Append(Separator);
        if (input.ValueKind == JsonValueKind.String)
        {
            text.Append("user").Append(Separator).Append(input.GetString()).Append(Separator);
            return;
        }
        if (input.ValueKind != JsonValueKind.Array) return;
        foreach (var item in input.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) continue;
            string? role = item.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()
                : item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            text.Append(role).Append(Separator);
            foreach (string field in new[] { "content", "output", "arguments" })
                if (item.TryGetProperty(field, out var content)) AppendContent(text, content);
            text.Append(Separator);
        }
    }

    private static void AppendContent(StringBuilder text, JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String) text.Append(content.GetString());
        else if (content.ValueKind == JsonValueKind.Array)
            foreach (var part in content.EnumerateArray())
                if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
                    text.Append(t.GetString());
    }

    private static void AppendPrompt(StringBuilder text, JsonElement prompt)
    {
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                text.Append(prompt.GetString());
                break;
            case JsonValueKind.Array:
                foreach (var item in prompt.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Number) text.Append(item.GetRawText()).Append(' ');
                    else
                    {
                        AppendPrompt(text, item); // the first prompt of a batch (or the first token list) keys the request
                        return;
                    }
                }
                break;
        }
    }
}
