using System.Text.Json;
using KvSharp.Server.Errors;

namespace KvSharp.Server.Chat;

/// <summary>
/// Chat fields this server cannot honour, refused with a 400 naming the field instead of ignored: a client that
/// sends the deprecated functions, asks for audio output or a web search would otherwise get plain text and no error.
/// What asks for nothing is accepted, as OpenAI's clients send it: absent or null, an empty functions list,
/// function_call "none", response_format {"type": "text"}, modalities ["text"]; so are {"type": "json_object"} and
/// {"type": "json_schema"} (<see cref="ResponseFormatOf"/>). Tools are <see cref="ChatTools"/>' business.
/// </summary>
internal static class ChatRefusedFields
{
    private const string NoFunctionCalling = "the deprecated function-calling fields are not supported by this server: use tools and tool_choice";

    /// <summary>Refuses what cannot be honoured; returns what response_format asks for (<see cref="ResponseFormatOf"/>), its schema read once.</summary>
    public static (KvSharp.Engine.ResponseFormat Format, KvSharp.Sampling.JsonSchemaPrefix? Schema) Check(ChatCompletionRequest body)
    {
        RefuseList(body.Functions, "functions");
        RefuseChoice(body.FunctionCall, "function_call");
        RefuseModalities(body.Modalities);
        if (Given(body.Audio)) throw ApiError.Unsupported("audio", "audio output is not supported by this server: its models write text");
        if (Given(body.WebSearchOptions))
            throw ApiError.Unsupported("web_search_options", "web_search_options is not supported: this server searches nothing; give the model what it needs in the messages or as tools");
        return ResponseFormatOf(body);
    }

    /// <summary>
    /// What response_format asks for: text (absent, null, {"type": "text"}), one JSON object ({"type": "json_object"}),
    /// or a value of a schema ({"type": "json_schema", "json_schema": {"name", "schema"}}: with the schema read, or
    /// refused naming what it cannot enforce).
    /// </summary>
    private static (KvSharp.Engine.ResponseFormat Format, KvSharp.Sampling.JsonSchemaPrefix? Schema) ResponseFormatOf(ChatCompletionRequest body)
    {
        if (!Given(body.ResponseFormat) || IsFormat(body.ResponseFormat, "text")) return (KvSharp.Engine.ResponseFormat.Text, null);
        if (IsFormat(body.ResponseFormat, "json_object")) return (KvSharp.Engine.ResponseFormat.JsonObject, null);
        if (IsFormat(body.ResponseFormat, "json_schema"))
        {
            if (!body.ResponseFormat.TryGetProperty("json_schema", out var spec) || spec.ValueKind != JsonValueKind.Object
                || !spec.TryGetProperty("schema", out var schema))
                throw ApiError.Missing("response_format.json_schema.schema");
            try
            {
                return (KvSharp.Engine.ResponseFormat.JsonSchema, KvSharp.Sampling.JsonSchemaPrefix.For(schema));
            }
            catch (ArgumentException e)
            {
                throw ApiError.Unsupported("response_format.json_schema.schema", $"response_format.json_schema: {e.Message}");
            }
        }
        throw ApiError.Unsupported("response_format",
            $"response_format {Short(body.ResponseFormat)} is not supported: {{\"type\": \"text\"}}, {{\"type\": \"json_object\"}} or {{\"type\": \"json_schema\", \"json_schema\": {{\"schema\": ...}}}}");
    }

    private static bool Given(JsonElement e) => e.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null);

    private static void RefuseList(JsonElement list, string param)
    {
        if (Given(list) && !(list.ValueKind == JsonValueKind.Array && list.GetArrayLength() == 0))
            throw ApiError.Unsupported(param, $"{param} are not supported: {NoFunctionCalling}");
    }

    private static void RefuseChoice(JsonElement choice, string param)
    {
        if (Given(choice) && !(choice.ValueKind == JsonValueKind.String && choice.GetString() == "none"))
            throw ApiError.Unsupported(param, $"{param} {Short(choice)} is not supported: {NoFunctionCalling} (only \"none\" is accepted)");
    }

    /// <summary>modalities: absent, null, or a list of "text" only (OpenAI's default, ["text"]); "audio" is refused.</summary>
    private static void RefuseModalities(JsonElement modalities)
    {
        if (!Given(modalities)) return;
        if (modalities.ValueKind != JsonValueKind.Array)
            throw ApiError.InvalidType("modalities", $"modalities must be a list such as [\"text\"], got a {modalities.ValueKind}");
        foreach (var m in modalities.EnumerateArray())
            if (m.ValueKind != JsonValueKind.String || m.GetString() != "text")
                throw ApiError.Unsupported("modalities", $"modalities {Short(modalities)} is not supported: this server's models write text only ([\"text\"])");
    }

    private static bool IsFormat(JsonElement format, string name) =>
        format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var type)
        && type.ValueKind == JsonValueKind.String && type.GetString() == name;

    /// <summary>The value as sent, cut short for the message.</summary>
    internal static string Short(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length <= 80 ? raw : raw[..80] + "...";
    }
}
