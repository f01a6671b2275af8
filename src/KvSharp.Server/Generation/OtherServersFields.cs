using System.Text.Json;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Server.Errors;

namespace KvSharp.Server.Generation;

/// <summary>
/// Fields of vLLM's and llama-server's OpenAI-style APIs that clients and load generators send here too: the JSON
/// schemas, regular expressions and choices they hold a reply to (taken), and what else would change the output
/// (refused by name, never ignored).
/// </summary>
internal static class OtherServersFields
{
    /// <summary>
    /// vLLM's and llama-server's fields that change what is generated and that this server does not do: refused by name
    /// when they ask for something (their neutral values, as clients send them by default, pass).
    /// </summary>
    public static void Refuse(SamplingParameters p)
    {
        const string Use = "use response_format with a json_schema (or json_object), guided_json, guided_regex or guided_choice instead";
        Refuse("guided_grammar", p.GuidedGrammar, Given, "grammars are not supported; " + Use);
        Refuse("grammar", p.Grammar, Given, "grammars are not supported; " + Use);
        Refuse("use_beam_search", p.UseBeamSearch, IsTrue, "beam search is not supported");
        Refuse("mirostat", p.Mirostat, NotOff(0), "mirostat sampling is not supported (0 = off)");
        Refuse("typical_p", p.TypicalP, NotOff(1), "locally typical sampling is not supported (1 = off)");
        Refuse("dry_multiplier", p.DryMultiplier, NotOff(0), "DRY sampling is not supported (0 = off)");
        Refuse("xtc_probability", p.XtcProbability, NotOff(0), "XTC sampling is not supported (0 = off)");
        Refuse("include_stop_str_in_output", p.IncludeStopStrInOutput, IsTrue, "a stop string is never included in the output");
        foreach (var (field, asks, why) in Unread)
            if (p.OtherFields != null && p.OtherFields.TryGetValue(field, out var value)) Refuse(field, value, asks, why);
    }

    /// <summary>
    /// vLLM's and llama-server's fields that no property reads (they reach <see cref="SamplingParameters.OtherFields"/>):
    /// each with when it asks for something this server does not do.
    /// </summary>
    private static readonly (string Field, Func<JsonElement, bool> Asks, string Why)[] Unread =
    [
        ("bad_words", NonEmpty, "bad_words is not supported; logit_bias -100 on a token rules it out"),
        ("allowed_token_ids", NonEmpty, "allowed_token_ids is not supported; logit_bias -100 on a token rules it out"),
        ("logits_processors", NonEmpty, "logits processors are not supported"),
        ("skip_special_tokens", IsFalse, "special tokens are never written into the text (skip_special_tokens false is not supported)"),
        ("return_tokens_as_token_ids", IsTrue, "return_tokens_as_token_ids is not supported"),
        ("guided_whitespace_pattern", Given, "the JSON constraints allow llama.cpp's whitespace (nothing, one space, or a newline and up to 20 spaces or tabs); another pattern is not supported"),
        ("structural_tag", Given, "structural tags are not supported; use response_format with a json_schema, guided_json, guided_regex or guided_choice"),
        ("add_generation_prompt", IsFalse, "a chat's prompt always opens the assistant's turn (add_generation_prompt false is not supported)"),
        ("continue_final_message", IsTrue, "continuing the last assistant message is not supported"),
        ("echo", IsTrue, "a chat reply never repeats the messages (echo is a completions field)"),
        ("chat_template", Given, "a chat template per request is not supported: kvsharp serve --chat-template NAME|FILE sets the server's"),
        ("documents", NonEmpty, "documents are not supported; put them in the messages"),
        ("verbosity", AsksForVerbosity, VerbosityRefusal),
        ("tfs_z", NotOff(1), "tail-free sampling is not supported (1 = off)"),
        ("dynatemp_range", NotOff(0), "dynamic temperature is not supported (0 = off)"),
        ("top_n_sigma", NotOff(-1), "top-n-sigma sampling is not supported (-1 = off)"),
    ];

    private static bool IsFalse(JsonElement e) => e.ValueKind == JsonValueKind.False;

    /// <summary>OpenAI's verbosity (chat, and the Responses API's text.verbosity) asking for other than "medium", its default.</summary>
    internal static bool AsksForVerbosity(JsonElement e) => Given(e) && !(e.ValueKind == JsonValueKind.String && e.GetString() == "medium");

    internal const string VerbosityRefusal = "verbosity is not supported: a model here writes at its own length (only \"medium\", the default, is accepted); max_tokens bounds a reply";

    /// <summary>A list, object or text with something in it.</summary>
    private static bool NonEmpty(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Array => e.GetArrayLength() > 0,
        JsonValueKind.Object => e.EnumerateObject().Any(),
        JsonValueKind.String => e.GetString()!.Length > 0,
        _ => Given(e),
    };

    private static bool IsTrue(JsonElement e) => e.ValueKind == JsonValueKind.True;

    /// <summary>A sampler's setting that asks for something: given, and not the number that turns it off.</summary>
    private static Func<JsonElement, bool> NotOff(double off) => e => Given(e) && !(e.ValueKind == JsonValueKind.Number && e.GetDouble() == off);

    /// <summary>What a request holds its reply to through these fields: the field, and the format with its schema or pattern.</summary>
    public sealed record Constraint(string Param, ResponseFormat Format, JsonSchemaPrefix? Schema, PatternPrefix? Pattern);

    /// <summary>
    /// The reply's constraint from vLLM's guided_json, guided_regex or guided_choice, or llama-server's json_schema (at
    /// most one of them); null when none is given. A JSON schema (an object, or its text) holds the reply to a value of
    /// it, as response_format's json_schema holds a chat reply; a regular expression to a text it matches whole; a
    /// list of strings to exactly one of them. Refused by name when malformed or beyond what the checkers enforce.
    /// </summary>
    public static Constraint? ConstraintOf(SamplingParameters p)
    {
        string[] given = [.. new[] { ("guided_json", p.GuidedJson), ("json_schema", p.JsonSchema), ("guided_regex", p.GuidedRegex), ("guided_choice", p.GuidedChoice) }
            .Where(f => Given(f.Item2)).Select(f => f.Item1)];
        if (given.Length > 1) throw ApiError.InvalidValue(given[1], $"give one constraint: {string.Join(" and ", given)} were both given");
        if (given.Length == 0) return null;
        try
        {
            return given[0] switch
            {
                "guided_regex" => p.GuidedRegex.ValueKind == JsonValueKind.String
                    ? new Constraint("guided_regex", ResponseFormat.Pattern, null, PatternPrefix.WholeText(p.GuidedRegex.GetString()!, "guided_regex"))
                    : throw ApiError.InvalidType("guided_regex", $"guided_regex must be a regular expression (a string), got a {p.GuidedRegex.ValueKind}"),
                "guided_choice" => new Constraint("guided_choice", ResponseFormat.Pattern, null, PatternPrefix.OneOf(Choices(p.GuidedChoice), "guided_choice")),
                string param => new Constraint(param, ResponseFormat.JsonSchema, Schema(param, param == "guided_json" ? p.GuidedJson : p.JsonSchema), null),
            };
        }
        catch (ArgumentException e)
        {
            throw ApiError.Unsupported(given[0], e.Message.StartsWith(given[0], StringComparison.Ordinal) ? e.Message : $"{given[0]}: {e.Message}");
        }
    }

    private static string[] Choices(JsonElement choices)
    {
        if (choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0 || choices.EnumerateArray().Any(c => c.ValueKind != JsonValueKind.String))
            throw ApiError.InvalidType("guided_choice", "guided_choice must be a non-empty list of strings");
        return [.. choices.EnumerateArray().Select(c => c.GetString()!)];
    }

    private static JsonSchemaPrefix Schema(string param, JsonElement schema)
    {
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
        return JsonSchemaPrefix.For(schema, param);
    }

    internal static bool Given(JsonElement e) => e.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null);

    private static void Refuse(string param, JsonElement value, Func<JsonElement, bool> asks, string why)
    {
        if (asks(value)) throw ApiError.Unsupported(param, $"{param} is not supported by this server: {why}");
    }
}
