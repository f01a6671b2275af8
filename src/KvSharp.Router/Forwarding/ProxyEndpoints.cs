using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KvSharp.Router.Forwarding;

/// <summary>
/// What the router forwards. The generation endpoints go by prompt prefix; the model list and the tokenizer
/// endpoints (answered alike by every replica, since all serve the same model) to any healthy replica. Anything else
/// is the router's 404, so a mistyped path is not blamed on a replica.
/// </summary>
internal static class ProxyEndpoints
{
    public static void Map(IEndpointRouteBuilder routes, RoutedForwarder forwarder)
    {
        foreach (string path in new[] { "/v1/chat/completions", "/v1/completions", "/v1/responses" })
            routes.MapPost(path, (HttpContext context) => forwarder.ForwardAsync(context, byPrompt: true));
        // A stored response lives on the replica that made it: its id says which (ResponseOwner).
        routes.MapGet("/v1/responses/{id}", (HttpContext context, string id) => forwarder.ForwardToOwnerAsync(context, id));
        routes.MapGet("/v1/responses/{id}/input_items", (HttpContext context, string id) => forwarder.ForwardToOwnerAsync(context, id));
        routes.MapDelete("/v1/responses/{id}", (HttpContext context, string id) => forwarder.ForwardToOwnerAsync(context, id));
        routes.MapGet("/v1/models", (HttpContext context) => forwarder.ForwardAsync(context, byPrompt: false));
        foreach (string path in new[] { "/tokenize", "/detokenize", "/apply-template" })
            routes.MapPost(path, (HttpContext context) => forwarder.ForwardAsync(context, byPrompt: false));
        routes.MapFallback((HttpContext context) => RouterErrors.WriteAsync(context, StatusCodes.Status404NotFound,
            $"{context.Request.Method} {context.Request.Path} is not a route of kvsharp router (it forwards /v1/chat/completions, /v1/completions, /v1/responses, /v1/models, " +
            "/tokenize, /detokenize, /apply-template; its own: /health, /router/replicas, /metrics; each replica's /metrics is on the replica)", "not_found"));
    }
}
