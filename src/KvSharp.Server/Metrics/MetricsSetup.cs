using KvSharp.Engine;
using KvSharp.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace KvSharp.Server.Metrics;

/// <summary>
/// <c>GET /metrics</c>: the engine's System.Diagnostics.Metrics (meter "KvSharp.Engine": KV blocks and bytes, prefix
/// cache, preemptions, queue, running sequences, tokens, TTFT and inter-token latency) and the server's, in
/// Prometheus text through OpenTelemetry's Prometheus exporter.
/// </summary>
internal static class MetricsSetup
{
    public static void AddMetrics(IServiceCollection services) =>
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("kvsharp"))
            .WithMetrics(metrics => metrics
                .AddMeter(EngineMetrics.MeterName, ServerMetrics.MeterName)
                .AddPrometheusExporter());

    public static void Map(IEndpointRouteBuilder routes) => routes.MapPrometheusScrapingEndpoint("/metrics");
}
