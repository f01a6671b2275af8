using KvSharp.Hosting;
using KvSharp.Router.Forwarding;
using KvSharp.Router.Replicas;
using KvSharp.Router.Routing;
using KvSharp.Router.Status;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Yarp.ReverseProxy.Forwarder;

namespace KvSharp.Router;

/// <summary>
/// <c>kvsharp router</c>: one OpenAI-compatible address in front of several kvsharp serve replicas of the same model
/// (ASP.NET Core on Kestrel, YARP's forwarder). A chat or completion request goes to the replica that already holds
/// the KV of its prompt's prefix (<see cref="ReplicaPicker"/>), which answers it from its prefix cache; replicas are
/// health-checked, and a request that fails before its response starts is sent to another replica. Every response
/// carries <c>x-kvsharp-replica</c>, the replica that answered. It loads no model.
/// </summary>
public sealed class KvSharpRouter : IAsyncDisposable
{
    private readonly HostedWebApp _host;

    private KvSharpRouter(WebApplication app, ReplicaSet replicas)
    {
        _host = new HostedWebApp(app);
        Replicas = replicas;
    }

    public ReplicaSet Replicas { get; }
    public RouterOptions Options => _host.Services.GetRequiredService<RouterOptions>();

    /// <summary>Builds the router (nothing listens until <see cref="StartAsync"/>).</summary>
    public static KvSharpRouter Create(RouterOptions options)
    {
        options.Validate();
        var address = HostedWebApp.ListenAddress(options.Host);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = typeof(KvSharpRouter).Assembly.GetName().Name });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            k.Listen(address, options.Port);
        });
        // Logs go to stderr: stdout is the caller's (`kvsharp bench --json` prints its one JSON object there, and a
        // replica taken out of rotation mid-run used to land in the middle of it).
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddRoutingCore();
        builder.Services.AddHttpForwarder();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("kvsharp-router"))
            .WithMetrics(metrics => metrics.AddMeter(RouterMetrics.MeterName).AddPrometheusExporter());
        var replicas = new ReplicaSet(options.Replicas);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(replicas);
        builder.Services.AddSingleton<RouterMetrics>();
        builder.Services.AddSingleton<ReplicaPicker>();
        builder.Services.AddSingleton<RoutedForwarder>();
        builder.Services.AddSingleton<HealthChecker>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<HealthChecker>());

        var app = builder.Build();
        app.UseRouting();
        RouterStatusEndpoints.Map(app, replicas);
        app.MapPrometheusScrapingEndpoint("/metrics");
        ProxyEndpoints.Map(app, app.Services.GetRequiredService<RoutedForwarder>());
        return new KvSharpRouter(app, replicas);
    }

    public Task StartAsync(CancellationToken cancellation = default) => _host.StartAsync(cancellation);

    /// <summary>Where the router listens (with the real port when <see cref="RouterOptions.Port"/> was 0).</summary>
    public Uri BaseAddress => _host.BaseAddress;

    /// <summary>Probes every replica's /health now instead of at the next tick.</summary>
    public Task CheckHealthAsync(CancellationToken cancellation = default) =>
        Task.WhenAll(Replicas.All.Select(r => _host.Services.GetRequiredService<HealthChecker>().ProbeAsync(r, cancellation)));

    /// <summary>Completes when the host is told to stop (Ctrl-C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _host.WaitForShutdownAsync(cancellation);

    public Task StopAsync(CancellationToken cancellation = default) => _host.StopAsync(cancellation);

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
    }
}
