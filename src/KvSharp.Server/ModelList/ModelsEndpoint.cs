using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.ModelList;

/// <summary>OpenAI's model list.</summary>
public sealed record ModelListResponse(string Object, ModelCard[] Data);

/// <summary>One model: <see cref="Created"/> is the file's modification time; <see cref="MaxModelLen"/> the served context (as vLLM reports it).</summary>
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, int MaxModelLen);

/// <summary><c>GET /v1/models</c>: the one model this server serves.</summary>
internal static class ModelsEndpoint
{
    public static void Map(IEndpointRouteBuilder routes) => routes.MapGet("/v1/models", (HttpContext context) =>
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        long created = new DateTimeOffset(File.GetLastWriteTimeUtc(served.Model.Path)).ToUnixTimeSeconds();
        var list = new ModelListResponse("list", [new ModelCard(served.ModelId, "model", created, "kvsharp", served.ContextLength)]);
        return context.Response.WriteAsJsonAsync(list, ServerJson.Default.ModelListResponse, contentType: null, context.RequestAborted);
    });
}
