using KvSharp.Engine;
using KvSharp.Hosting;
using KvSharp.Server.Chat;
using KvSharp.Server.Completions;
using KvSharp.Server.Errors;
using KvSharp.Server.Health;
using KvSharp.Server.Hosting;
using KvSharp.Server.Inspector;
using KvSharp.Server.Metrics;
using KvSharp.Server.ModelList;
using KvSharp.Server.Tokenize;
using KvSharp.Templates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KvSharp.Server;

/// <summary>
/// An OpenAI-compatible HTTP server (ASP.NET Core minimal APIs on Kestrel) over one model and one
/// <see cref="LlmEngine"/>: every request shares its continuous batching and its prefix cache. Endpoints:
/// <c>POST /v1/completions</c>, <c>POST /v1/chat/completions</c>, <c>POST /apply-template</c>, <c>POST /tokenize</c>, <c>POST /detokenize</c>, <c>GET /v1/models</c>,
/// <c>GET /health</c>, <c>GET /metrics</c>, and the KV cache inspector (<c>GET /</c>, <c>/v1/kv/snapshot</c>, <c>/v1/kv/events</c>); each group maps itself from its own folder.
/// The caller keeps ownership of the model; the server owns the engine.
/// </summary>
public sealed class KvSharpServer : IAsyncDisposable
{
    private readonly HostedWebApp _host;

    private KvSharpServer(WebApplication app, LlmEngine engine, ServerMetrics metrics)
    {
        _host = new HostedWebApp(app);
        Engine = engine;
        Metrics = metrics;
        Service = app.Services.GetRequiredService<EngineService>();
        InspectorFeed = app.Services.GetRequiredService<SnapshotFeed>();
    }

    public LlmEngine Engine { get; }
    public ServerOptions Options => Service.Options;
    /// <summary>The template chat requests are rendered with, resolved when the server was created.</summary>
    public ChatTemplate ChatTemplate => Service.ChatTemplate;
    internal EngineService Service { get; }
    internal ServerMetrics Metrics { get; }
    /// <summary>The inspector's shared snapshots (its <see cref="SnapshotFeed.Readers"/> tell whether a page is open).</summary>
    internal SnapshotFeed InspectorFeed { get; }

    /// <summary>Builds the server (nothing listens until <see cref="StartAsync"/>).</summary>
    public static KvSharpServer Create(LlmModel model, ServerOptions options)
    {
        options.Validate();
        // Resolved before anything starts: a bad template is an error now, not on the first chat request.
        var chatTemplate = options.ChatTemplate ?? ChatTemplate.ForModel(model);
        var address = HostedWebApp.ListenAddress(options.Host);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = typeof(KvSharpServer).Assembly.GetName().Name });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(address, options.Port);
        });
        // Logs go to stderr: stdout is the caller's (`kvsharp bench --json` prints its one JSON object there, and a
        // replica taken out of rotation mid-run used to land in the middle of it).
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddRoutingCore();
        MetricsSetup.AddMetrics(builder.Services);

        var engine = new LlmEngine(model, options.Engine);
        var metrics = new ServerMetrics();
        builder.Services.AddSingleton(sp => new EngineService(model, engine, chatTemplate, options, metrics,
            sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<EngineService>>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EngineService>());
        InspectorEndpoints.AddServices(builder.Services);

        var app = builder.Build();
        app.Use(ErrorHandling.Middleware);
        if (options.ApiKey != null) app.Use(new ApiKeyCheck(options.ApiKey).Middleware);
        // One line per endpoint group; each maps its routes from its own folder.
        CompletionsEndpoint.Map(app);
        ChatCompletionsEndpoint.Map(app);
        Responses.ResponsesEndpoint.Map(app);
        ApplyTemplateEndpoint.Map(app);
        TokenizeEndpoints.Map(app);
        Sessions.KvSessionEndpoints.Map(app);
        ModelsEndpoint.Map(app);
        HealthEndpoint.Map(app);
        MetricsSetup.Map(app);
        InspectorEndpoints.Map(app);
        return new KvSharpServer(app, engine, metrics);
    }

    /// <summary>Starts listening and the engine's loop.</summary>
    public Task StartAsync(CancellationToken cancellation = default) => _host.StartAsync(cancellation);

    /// <summary>Where the server listens (with the real port when <see cref="ServerOptions.Port"/> was 0).</summary>
    public Uri BaseAddress => _host.BaseAddress;

    /// <summary>Completes when the host is told to stop (Ctrl-C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _host.WaitForShutdownAsync(cancellation);

    /// <summary>Cancels the requests still running (their clients get an error event or a 503), then stops listening.</summary>
    public Task StopAsync(CancellationToken cancellation = default) => _host.StopAsync(cancellation);

    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
        Metrics.Dispose();
        Engine.Dispose();
    }
}
