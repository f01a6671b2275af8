using KvSharp.Server.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KvSharp.Server.Errors;

/// <summary>
/// The one place a failed request becomes a response: an <see cref="ApiError"/> is written in OpenAI's shape with its
/// status; a client that went away gets nothing (there is no one to tell); anything else is logged and becomes a 500
/// in the same shape, if the response has not started.
/// </summary>
internal static class ErrorHandling
{
    public static async Task Middleware(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context);
            // Routing's own refusals (no endpoint at this path; one, but not for this method) come without a body:
            // give them OpenAI's shape too, so a client's error handling never meets an empty 404.
            if (context.Response is { HasStarted: false, StatusCode: 404 or 405 })
            {
                string where = $"{context.Request.Method} {context.Request.Path}";
                await Write(context, context.Response.StatusCode == 404
                    ? new ApiError(404, $"Invalid URL ({where}): no such endpoint", ApiError.InvalidRequest, null, "not_found")
                    : new ApiError(405, $"Method not allowed ({where}): see the Allow header", ApiError.InvalidRequest, null, "method_not_allowed"));
            }
        }
        catch (ApiError e) when (!context.Response.HasStarted)
        {
            await Write(context, e);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            // Kestrel's own refusals while reading the body (too large, malformed framing) keep their status.
            await Write(context, new ApiError(e.StatusCode, e.Message, ApiError.InvalidRequest, null, null));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client disconnected; its request was cancelled (see GenerationRun).
        }
        catch (Exception e) when (!context.Response.HasStarted && e is not (ApiError or BadHttpRequestException))
        {
            context.RequestServices.GetService<ILogger<KvSharpServer>>()?.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            await Write(context, new ApiError(500, $"internal error: {e.Message}", "server_error", null, null));
        }
    }

    public static Task Write(HttpContext context, ApiError error)
    {
        context.Response.StatusCode = error.Status;
        return context.Response.WriteAsJsonAsync(ErrorBody.From(error), ServerJson.Default.ErrorBody, contentType: null, context.RequestAborted);
    }
}
