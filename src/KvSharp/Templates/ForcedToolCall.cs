using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Sampling;

namespace KvSharp.Templates;

/// <summary>
/// A reply that must call a tool (OpenAI's tool_choice "required" or a named function, Microsoft.Extensions.AI's
/// <c>ChatToolMode.RequireAny</c> / <c>RequireSpecific</c>), written in the family's syntax as its model was trained
/// to write it: the reply starts with <see cref="Opening"/> (put after the prompt, so the model goes on from it),
/// the model writes what <see cref="Constraint"/> allows (the tool's name where the syntax puts it outside the JSON,
/// then the call's JSON) and generation ends when that JSON is whole; <see cref="Closing"/> then closes the call. One
/// call: several in one reply are the model's choice, which forcing one takes away.
/// </summary>
public sealed record ForcedToolCall(string Opening, JsonSchemaPrefix Constraint, string Closing)
{
    /// <summary>The whole reply, for <see cref="ToolCallSyntax.Parse"/>: the opening, what was generated, the closing.</summary>
    public string Reply(string generated) => Opening + generated + Closing;

    /// <summary>
    /// The prompt with this call's opening after it, and the call as it goes on from there: after a prompt that left the
    /// model inside a think block, the block is closed empty first (as Qwen 3's template does with thinking off), so
    /// the call is not written as a thought.
    /// </summary>
    public (RenderedChat Prompt, ForcedToolCall Call) Begin(RenderedChat rendered)
    {
        ArgumentNullException.ThrowIfNull(rendered);
        var call = ReasoningSplitter.PromptOpensThinking(rendered.Prompt) ? this with { Opening = ReasoningSplitter.Close + "\n\n" + Opening } : this;
        return (rendered.WithReplyStart(call.Opening), call);
    }
}

/// <summary>A tool a forced call may call: its name, its parameters' schema, and where the request holds that schema (for errors).</summary>
public sealed record ToolSignature(string Name, JsonElement Parameters, string Path)
{
    /// <summary>
    /// The functions of an OpenAI-shaped tool list (<c>[{"type": "function", "function": {"name", "parameters"}}]</c>);
    /// a function without parameters takes any object.
    /// </summary>
    /// <exception cref="ArgumentException">The list is not one, or a function has no name.</exception>
    public static List<ToolSignature> Of(JsonElement tools)
    {
        if (tools.ValueKind != JsonValueKind.Array || tools.GetArrayLength() == 0) throw new ArgumentException("tools must be a non-empty array of functions");
        var signatures = new List<ToolSignature>();
        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            string path = $"tools[{i++}].function";
            if (!tool.TryGetProperty("function", out var function) || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                throw new ArgumentException($"{path}.name is missing");
            var parameters = function.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object ? p : AnyObject;
            signatures.Add(new ToolSignature(name.GetString()!, parameters, path + ".parameters"));
        }
        return signatures;
    }

    private static readonly JsonElement AnyObject = JsonDocument.Parse("{\"type\": \"object\"}").RootElement.Clone();

    /// <summary>
    /// The schema of a call object that names one of <paramref name="tools"/> under <paramref name="nameKey"/> and holds
    /// its arguments under <paramref name="argumentsKey"/> (both required), with the optional string properties
    /// <paramref name="optionalStrings"/> (an id some families write); one alternative per tool.
    /// </summary>
    public static JsonElement CallObjectSchema(IReadOnlyList<ToolSignature> tools, string nameKey, string argumentsKey, params string[] optionalStrings)
    {
        var alternatives = new JsonArray();
        foreach (var tool in tools)
        {
            var properties = new JsonObject();
            foreach (string key in optionalStrings) properties[key] = new JsonObject { ["type"] = "string" };
            properties[nameKey] = new JsonObject { ["const"] = tool.Name };
            // The parameters' own references point into the parameters: where they now sit, said from the new root.
            string at = (tools.Count == 1 ? "" : $"/anyOf/{alternatives.Count}") + "/properties/" + argumentsKey.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
            properties[argumentsKey] = Rebased(JsonNode.Parse(tool.Parameters.GetRawText()), at);
            alternatives.Add(new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = new JsonArray(nameKey, argumentsKey) });
        }
        JsonNode schema = alternatives.Count == 1 ? alternatives[0]!.DeepClone() : new JsonObject { ["anyOf"] = alternatives };
        return JsonSerializer.SerializeToElement(schema);
    }

    /// <summary>A schema whose <c>$ref</c> pointers into itself ("#/...") are moved under <paramref name="at"/>.</summary>
    private static JsonNode? Rebased(JsonNode? node, string at)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                    if (key == "$ref" && value is JsonValue v && v.TryGetValue(out string? pointer) && pointer.StartsWith('#')) o[key] = "#" + at + pointer[1..];
                    else Rebased(value, at);
                break;
            case JsonArray a:
                foreach (var item in a) Rebased(item, at);
                break;
        }
        return node;
    }
}
