using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KvSharp.Hosting;

/// <summary>
/// The lifetime of a built ASP.NET Core app as <c>kvsharp serve</c> and <c>kvsharp router</c> run it: where it
/// listens, start, stop, wait for shutdown, dispose (stopping first if it still runs). Compiled into both assemblies
/// (the router links this file rather than referencing the server), so the two hosts keep one behaviour.
/// </summary>
internal sealed class HostedWebApp(WebApplication app) : IAsyncDisposable
{
    private bool _started;

    public IServiceProvider Services => app.Services;

    /// <summary>Loopback unless told otherwise; "localhost" is the IPv4 loopback (a port of 0 cannot bind a name).</summary>
    public static IPAddress ListenAddress(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        return IPAddress.TryParse(host, out var ip) ? ip
            : throw new ArgumentException($"--host {host} is not an IP address or 'localhost' (e.g. 127.0.0.1, or 0.0.0.0 for every interface)");
    }

    public async Task StartAsync(CancellationToken cancellation)
    {
        await app.StartAsync(cancellation);
        _started = true;
    }

    /// <summary>Where it listens, with the real port when it was asked for port 0.</summary>
    public Uri BaseAddress => new(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());

    /// <summary>Completes when the host is told to stop (Ctrl-C, SIGTERM, or <see cref="StopAsync"/>), which stops it.</summary>
    public async Task WaitForShutdownAsync(CancellationToken cancellation)
    {
        await app.WaitForShutdownAsync(cancellation);
        _started = false;
    }

    public async Task StopAsync(CancellationToken cancellation)
    {
        _started = false;
        await app.StopAsync(cancellation);
    }

    public async ValueTask DisposeAsync()
    {
        if (_started) await app.StopAsync();
        await app.DisposeAsync();
    }
}
