using System.Text.Json.Nodes;
using KvSharp.Router.Replicas;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KvSharp.Router.Status;

/// <summary>
/// The router's own endpoints. <c>GET /health</c>: 200 <c>{"status": "ok"}</c> while at least one replica is in
/// rotation, else 503 <c>{"status": "unavailable"}</c> (so a load balancer in front of several routers skips one that can
/// serve nothing). <c>GET /router/replicas</c>: each replica's address, health, in-flight requests and counts.
/// </summary>
internal static class RouterStatusEndpoints
{
    public static void Map(IEndpointRouteBuilder routes, ReplicaSet replicas)
    {
        routes.MapGet("/health", (HttpContext context) =>
        {
            int healthy = replicas.HealthyCount;
            var body = new JsonObject { ["status"] = healthy > 0 ? "ok" : "unavailable", ["healthy_replicas"] = healthy, ["replicas"] = replicas.All.Count };
            return Json(context, healthy > 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, body);
        });
        routes.MapGet("/router/replicas", (HttpContext context) =>
        {
            var list = new JsonArray();
            foreach (var r in replicas.All)
                list.Add(new JsonObject
                {
                    ["url"] = r.Address.ToString(),
                    ["healthy"] = r.Healthy,
                    ["down_reason"] = r.DownReason,
                    ["in_flight"] = r.InFlight,
                    ["requests"] = r.Requests,
                    ["retries"] = r.Retries,
                    ["midstream_failures"] = r.MidStreamFailures,
                });
            return Json(context, StatusCodes.Status200OK, new JsonObject { ["replicas"] = list });
        });
    }

    private static Task Json(HttpContext context, int status, JsonObject body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }
}
