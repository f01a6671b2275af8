using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace KvSharp.Router.Forwarding;

/// <summary>The router's own errors, in OpenAI's error shape (<c>{"error": {"message", "type", "param", "code"}}</c>) like kvsharp serve's.</summary>
internal static class RouterErrors
{
    public static Task WriteAsync(HttpContext context, int status, string message, string code)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var body = new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = message, ["type"] = status >= 500 ? "server_error" : "invalid_request_error", ["param"] = null, ["code"] = code },
        };
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }
}
