using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using KvSharp.Server.Errors;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Json;

/// <summary>Reads a request body into its DTO; malformed JSON and fields of the wrong type become 400s naming the field.</summary>
internal static class JsonBody
{
    public static async Task<T> ReadAsync<T>(HttpRequest request, JsonTypeInfo<T> type) where T : class
    {
        T? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(request.Body, type, request.HttpContext.RequestAborted);
        }
        catch (JsonException e)
        {
            // "$.max_tokens" -> "max_tokens"; a conversion error has a path below the root, a syntax error may not.
            string? param = e.Path is { Length: > 2 } path ? path[2..] : null;
            bool wrongType = param != null && e.Message.Contains("could not be converted", StringComparison.Ordinal);
            throw wrongType
                ? ApiError.InvalidType(param!, $"'{param}' must be {Expected(e.Message)}")
                : new ApiError(400, $"We could not parse the JSON body of your request: {e.Message}", ApiError.InvalidRequest, param, "invalid_json");
        }
        return body ?? throw new ApiError(400, "The request body must be a JSON object", ApiError.InvalidRequest, null, "invalid_json");
    }

    /// <summary>
    /// What System.Text.Json wanted, in JSON's words: its message names the .NET type ("could not be converted to
    /// System.Nullable`1[System.Int32]"), which a client of an HTTP API should never have to decode.
    /// </summary>
    internal static string Expected(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"could not be converted to (\S+?)\.(?: Path|$)");
        string type = m.Success ? m.Groups[1].Value : "";
        if (type.StartsWith("System.Nullable`1[", StringComparison.Ordinal)) type = type["System.Nullable`1[".Length..^1];
        return type switch
        {
            "System.Int32" => "an integer no larger than 2147483647",
            "System.Int64" => "an integer",
            "System.UInt64" or "System.UInt32" => "a non-negative integer",
            "System.Single" or "System.Double" => "a number",
            "System.Boolean" => "true or false",
            "System.String" => "a string",
            _ when type.EndsWith("[]", StringComparison.Ordinal) || type.Contains("List`1", StringComparison.Ordinal) => "an array",
            _ => "an object",
        };
    }
}
