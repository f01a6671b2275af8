using System.Security.Cryptography;
using System.Text;
using KvSharp.Server.Errors;
using KvSharp.Server.Health;
using KvSharp.Server.Inspector;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Server.Hosting;

/// <summary>
/// With --api-key, every path but /health and the inspector's page files (which carry no data) needs the key, as "Authorization: Bearer KEY" (OpenAI's clients) or
/// "X-Api-Key: KEY"; a missing or wrong key is a 401. Compared in constant time.
/// </summary>
internal sealed class ApiKeyCheck(string key)
{
    private readonly byte[] _key = Encoding.UTF8.GetBytes(key);

    public Task Middleware(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path.Equals(HealthEndpoint.Path, StringComparison.OrdinalIgnoreCase)) return next(context);
        if (InspectorAssets.IsPublic(context.Request.Path.Value ?? "")) return next(context);
        string? given = Presented(context.Request.Headers);
        if (given != null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), _key)) return next(context);
        return ErrorHandling.Write(context, ApiError.Unauthorized(keyGiven: given != null));
    }

    private static string? Presented(IHeaderDictionary headers)
    {
        string? authorization = headers.Authorization;
        if (authorization != null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return authorization["Bearer ".Length..].Trim();
        string? apiKey = headers["X-Api-Key"];
        return apiKey;
    }
}
