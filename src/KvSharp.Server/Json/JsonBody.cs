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
                ? ApiError.InvalidType(param!, $"'{param}' has the wrong type: {e.Message}")
                : new ApiError(400, $"We could not parse the JSON body of your request: {e.Message}", ApiError.InvalidRequest, param, "invalid_json");
        }
        return body ?? throw new ApiError(400, "The request body must be a JSON object", ApiError.InvalidRequest, null, "invalid_json");
    }
}
