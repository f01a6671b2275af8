using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KvSharp.Server.Health;

public sealed record HealthStatus(string Status);

/// <summary><c>GET /health</c>: <c>{"status": "ok"}</c> once the model is loaded and the engine runs (llama-server's shape); no API key needed.</summary>
internal static class HealthEndpoint
{
    public const string Path = "/health";

    public static void Map(IEndpointRouteBuilder routes) => routes.MapGet(Path, (HttpContext context) =>
        context.Response.WriteAsJsonAsync(new HealthStatus("ok"), ServerJson.Default.HealthStatus, contentType: null, context.RequestAborted));
}
