using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace KvSharp.Templates;

/// <summary>What a reply with tool calls says: its text outside the calls (trimmed) and the calls.</summary>
public sealed record ToolCallReply(string Content, IReadOnlyList<ChatToolCall> Calls);

/// <summary>
/// How a model family writes tool calls in its reply, told from its chat template (as llama.cpp's common/chat.cpp
/// does): Hermes 2 Pro / Qwen 2.5 / Qwen 3 wrap each in <c>&lt;tool_call&gt;{"name", "arguments"}&lt;/tool_call&gt;</c>,
/// Mistral writes <c>[TOOL_CALLS]</c> and a JSON list, Llama 3.1-3.3 answer with one JSON object
/// <c>{"name", "parameters"}</c> (after <c>&lt;|python_tag|&gt;</c> or alone). A call whose JSON does not parse, or
/// lacks a name, is not a call: its text stays in the content, so nothing is lost or invented. The reply is read with
/// special tokens rendered (Mistral's marker is one).
/// </summary>
public abstract partial class ToolCallSyntax
{
    /// <summary>The family's name, for messages and logs.</summary>
    public abstract string Name { get; }

    /// <summary>The syntax the template's model writes, or null when the template shows none kvsharp reads.</summary>
    public static ToolCallSyntax? Of(ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        string s = template.Source;
        if (s.Contains("<tool_call>", StringComparison.Ordinal)) return new Hermes();
        if (s.Contains("[TOOL_CALLS]", StringComparison.Ordinal)) return new Mistral();
        if (s.Contains("<|python_tag|>", StringComparison.Ordinal) || (s.Contains("ipython", StringComparison.Ordinal) && s.Contains("\"parameters\"", StringComparison.Ordinal)))
            return new LlamaJson();
        return null;
    }

    /// <summary>The families <see cref="Of"/> recognises, for an error naming what a template lacks.</summary>
    public const string Supported = "Hermes 2 Pro / Qwen <tool_call>, Mistral [TOOL_CALLS], Llama 3.x JSON";

    /// <summary>Splits a reply into its text and its tool calls (none: the whole reply is content).</summary>
    public abstract ToolCallReply Parse(string reply);

    /// <summary>A call from a JSON object with a "name" and its arguments under one of <paramref name="argumentKeys"/>; null when it is not one.</summary>
    private protected ChatToolCall? Call(JsonElement e, params string[] argumentKeys)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
            || string.IsNullOrEmpty(name.GetString()))
            return null;
        string arguments = "{}";
        foreach (string key in argumentKeys)
            if (e.TryGetProperty(key, out var a))
            {
                arguments = a.ValueKind switch
                {
                    JsonValueKind.String => a.GetString()!,
                    JsonValueKind.Object => a.GetRawText(),
                    _ => "",
                };
                if (arguments.Length == 0) return null;
                break;
            }
        string? given = e.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        return new ChatToolCall(NewId(given), name.GetString()!, arguments);
    }

    /// <summary>The call id: the model's where it gave one this syntax accepts, else a fresh one.</summary>
    private protected virtual string NewId(string? given) => "call_" + RandomAlphanumeric(24);

    private protected static string RandomAlphanumeric(int length) =>
        RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", length);

    private protected static JsonElement? ParseJson(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Hermes 2 Pro, Qwen 2.5 and Qwen 3: each call a JSON object between &lt;tool_call&gt; tags (the last may end with the reply).</summary>
    private sealed partial class Hermes : ToolCallSyntax
    {
        public override string Name => "hermes";

        [GeneratedRegex(@"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", RegexOptions.Singleline)]
        private static partial Regex Block();

        public override ToolCallReply Parse(string reply)
        {
            var calls = new List<ChatToolCall>();
            var content = new System.Text.StringBuilder();
            int at = 0;
            foreach (Match m in Block().Matches(reply))
            {
                if (ParseJson(m.Groups[1].Value) is not { } json || Call(json, "arguments", "parameters") is not { } call) continue;
                content.Append(reply, at, m.Index - at);
                at = m.Index + m.Length;
                calls.Add(call);
            }
            content.Append(reply, at, reply.Length - at);
            return new ToolCallReply(content.ToString().Trim(), calls);
        }
    }

    /// <summary>Mistral: [TOOL_CALLS] and a JSON list of {"name", "arguments", "id"}; its templates want 9-character alphanumeric ids.</summary>
    private sealed class Mistral : ToolCallSyntax
    {
        private const string Marker = "[TOOL_CALLS]";

        public override string Name => "mistral";

        public override ToolCallReply Parse(string reply)
        {
            int at = reply.IndexOf(Marker, StringComparison.Ordinal);
            if (at < 0 || ParseJson(reply[(at + Marker.Length)..].Trim()) is not { ValueKind: JsonValueKind.Array } list) return new ToolCallReply(reply.Trim(), []);
            var calls = new List<ChatToolCall>();
            foreach (var e in list.EnumerateArray())
            {
                if (Call(e, "arguments", "parameters") is not { } call) return new ToolCallReply(reply.Trim(), []);
                calls.Add(call);
            }
            return new ToolCallReply(reply[..at].Trim(), calls);
        }

        private protected override string NewId(string? given) =>
            given is { Length: 9 } && given.All(char.IsAsciiLetterOrDigit) ? given : RandomAlphanumeric(9);
    }

    /// <summary>Llama 3.1-3.3: the reply is one JSON object {"name", "parameters"}, after &lt;|python_tag|&gt; or alone.</summary>
    private sealed class LlamaJson : ToolCallSyntax
    {
        private const string PythonTag = "<|python_tag|>";

        public override string Name => "llama3-json";

        public override ToolCallReply Parse(string reply)
        {
            string text = reply.Trim();
            if (text.StartsWith(PythonTag, StringComparison.Ordinal)) text = text[PythonTag.Length..].Trim();
            if (text.StartsWith('{') && ParseJson(text) is { } json && Call(json, "parameters", "arguments") is { } call) return new ToolCallReply("", [call]);
            return new ToolCallReply(reply.Trim(), []);
        }
    }
}
