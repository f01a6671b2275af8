using System.Text.Json;
using KvSharp.Sampling;
using KvSharp.Server.Errors;

namespace KvSharp.Server.Generation;

/// <summary>
/// Fields of vLLM's and llama-server's OpenAI-style APIs that clients and load generators send here too: the JSON
/// schemas they hold a reply to (taken), and what else would change the output (refused by name, never ignored).
/// </summary>
internal static class OtherServersFields
{
    /// <summary>
    /// vLLM's and llama-server's fields that change what is generated and that this server does not do: refused by name
    /// when they ask for something (their neutral values, as clients send them by default, pass).
    /// </summary>
    public static void Refuse(SamplingParameters p)
    {
        const string Use = "use response_format with a json_schema (or json_object), or guided_json, instead";
        Refuse("guided_regex", p.GuidedRegex, Given, "constrained regular expressions are not supported; a json_schema response_format can hold a string to a pattern");
        Refuse("guided_choice", p.GuidedChoice, Given, "use response_format with a json_schema whose enum lists the choices instead");
        Refuse("guided_grammar", p.GuidedGrammar, Given, "grammars are not supported; " + Use);
        Refuse("grammar", p.Grammar, Given, "grammars are not supported; " + Use);
        Refuse("use_beam_search", p.UseBeamSearch, e => e.ValueKind == JsonValueKind.True, "beam search is not supported");
        Refuse("mirostat", p.Mirostat, e => Given(e) && !(e.ValueKind == JsonValueKind.Number && e.GetDouble() == 0), "mirostat sampling is not supported (0 = off)");
        Refuse("typical_p", p.TypicalP, e => Given(e) && !(e.ValueKind == JsonValueKind.Number && e.GetDouble() == 1), "locally typical sampling is not supported (1 = off)");
        Refuse("dry_multiplier", p.DryMultiplier, e => Given(e) && !(e.ValueKind == JsonValueKind.Number && e.GetDouble() == 0), "DRY sampling is not supported (0 = off)");
        Refuse("xtc_probability", p.XtcProbability, e => Given(e) && !(e.ValueKind == JsonValueKind.Number && e.GetDouble() == 0), "XTC sampling is not supported (0 = off)");
        Refuse("prompt_logprobs", p.PromptLogprobs, Given, "logprobs of the prompt's tokens are not reported; logprobs covers the generated ones");
        Refuse("include_stop_str_in_output", p.IncludeStopStrInOutput, e => e.ValueKind == JsonValueKind.True, "a stop string is never included in the output");
    }

    /// <summary>
    /// vLLM's guided_json or llama-server's json_schema: a JSON schema (an object, or its JSON text) the reply must be a
    /// value of, as response_format's json_schema holds a chat reply; null when neither is given. Refused by name when
    /// both are, or when the schema is malformed or asks for what the checker does not enforce.
    /// </summary>
    public static (string Param, JsonSchemaPrefix Schema)? GuidedSchema(SamplingParameters p)
    {
        if (Given(p.GuidedJson) && Given(p.JsonSchema))
            throw ApiError.InvalidValue("json_schema", "give the schema once: guided_json (vLLM's) or json_schema (llama-server's), not both");
        var (param, schema) = Given(p.GuidedJson) ? ("guided_json", p.GuidedJson) : Given(p.JsonSchema) ? ("json_schema", p.JsonSchema) : (null, default);
        if (param == null) return null;
        if (schema.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var parsed = JsonDocument.Parse(schema.GetString()!);
                schema = parsed.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw ApiError.InvalidValue(param, $"{param} is a string but not a JSON schema's text: {e.Message}");
            }
        }
        if (schema.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidType(param, $"{param} must be a JSON schema (an object, or its JSON text), got a {schema.ValueKind}");
        try
        {
            return (param, JsonSchemaPrefix.For(schema, param));
        }
        catch (ArgumentException e)
        {
            throw ApiError.Unsupported(param, $"{param}: {e.Message}");
        }
    }

    internal static bool Given(JsonElement e) => e.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null);

    private static void Refuse(string param, JsonElement value, Func<JsonElement, bool> asks, string why)
    {
        if (asks(value)) throw ApiError.Unsupported(param, $"{param} is not supported by this server: {why}");
    }
}
