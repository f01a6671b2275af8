using System.Buffers;
using KvSharp.Server.Generation;
using KvSharp.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KvSharp.Server.Inspector;

/// <summary>
/// The live KV cache inspector: <c>GET /</c> (the page) and its files under <c>/inspector/</c>; <c>GET /v1/kv/snapshot</c>
/// (the engine as JSON, taken now); <c>GET /v1/kv/events</c> (the same JSON as server-sent events when the engine's
/// state changed, at most one per <see cref="ServerOptions.InspectorInterval"/>, a comment every 15 s to keep idle
/// connections open; with <c>?delta=true</c> only the first is whole and the rest are <c>event: delta</c>, the parts
/// that changed).
/// </summary>
internal static class InspectorEndpoints
{
    public const string SnapshotPath = "/v1/kv/snapshot", EventsPath = "/v1/kv/events";
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    public static void AddServices(IServiceCollection services) =>
        services.AddSingleton(sp =>
        {
            var service = sp.GetRequiredService<EngineService>();
            return new SnapshotFeed(service.Engine, service.Options.InspectorInterval);
        });

    public static void Map(WebApplication app)
    {
        app.MapGet("/", (HttpContext context) => WriteAsset(context, "index.html"));
        app.MapGet(InspectorAssets.Prefix + "{name}", (HttpContext context, string name) => WriteAsset(context, name));
        app.MapGet(SnapshotPath, (HttpContext context, EngineService service) =>
        {
            context.Response.Headers.CacheControl = "no-store";
            return context.Response.WriteAsJsonAsync(service.Engine.Inspect(), InspectorJson.Default.EngineSnapshotDetail, contentType: null, context.RequestAborted);
        });
        app.MapGet(EventsPath, StreamAsync);
    }

    private static Task WriteAsset(HttpContext context, string name)
    {
        if (!InspectorAssets.Files.TryGetValue(name, out var asset))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }
        context.Response.Headers.ETag = asset.ETag;
        context.Response.Headers.CacheControl = "no-cache";
        if (context.Request.Headers.IfNoneMatch == asset.ETag)
        {
            context.Response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }
        context.Response.ContentType = asset.ContentType;
        return context.Response.Body.WriteAsync(asset.Bytes, context.RequestAborted).AsTask();
    }

    /// <summary>Streams snapshots until the page goes away or the server stops.</summary>
    private static async Task StreamAsync(HttpContext context, SnapshotFeed feed, IHostApplicationLifetime lifetime)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        using var reader = feed.OpenReader();
        var response = context.Response;
        ServerSentEvents.Begin(response);
        bool deltas = context.Request.Query["delta"] is [var delta] && bool.TryParse(delta, out bool on) && on;
        long sent = -1;
        var lastWrite = DateTime.UtcNow;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var snapshot = feed.Latest();
                if (snapshot.Changes != sent)
                {
                    // A page that has the delta's base gets only what changed; one that missed a snapshot, the whole.
                    if (deltas && snapshot.Delta is { } changed && snapshot.Base == sent)
                    {
                        response.BodyWriter.Write("event: delta\n"u8);
                        ServerSentEvents.Write(response.BodyWriter, changed);
                    }
                    else ServerSentEvents.Write(response.BodyWriter, snapshot.Json);
                    await response.BodyWriter.FlushAsync(stop.Token);
                    sent = snapshot.Changes;
                    lastWrite = DateTime.UtcNow;
                }
                else if (DateTime.UtcNow - lastWrite > KeepAlive)
                {
                    await response.BodyWriter.WriteAsync(": keep-alive\n\n"u8.ToArray(), stop.Token);
                    lastWrite = DateTime.UtcNow;
                }
                await Task.Delay(feed.Interval, stop.Token);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The page closed, or the server is stopping: the stream just ends.
        }
    }
}
