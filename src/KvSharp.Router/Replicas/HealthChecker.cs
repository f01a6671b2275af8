using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KvSharp.Router.Replicas;

/// <summary>
/// Active health checks: every <see cref="RouterOptions.HealthInterval"/>, GET /health on each replica; a replica that
/// does not answer 200 in time leaves the rotation, and one that does comes back. (Failed requests take a replica out
/// at once too; only this check puts it back.)
/// </summary>
internal sealed class HealthChecker(ReplicaSet replicas, RouterOptions options, ILogger<HealthChecker> log) : BackgroundService
{
    private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = options.HealthTimeout }) { Timeout = options.HealthTimeout };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.HealthInterval);
        do
        {
            await Task.WhenAll(replicas.All.Select(r => ProbeAsync(r, stoppingToken)));
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>One probe of one replica (also callable directly, e.g. by tests that do not want to wait a tick).</summary>
    internal async Task ProbeAsync(Replica replica, CancellationToken cancellation)
    {
        string? failure;
        long ticket = replica.BeginProbe();
        try
        {
            using var response = await _client.GetAsync(replica.Prefix + "/health", cancellation);
            failure = response.IsSuccessStatusCode ? null : $"GET /health answered {(int)response.StatusCode}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
        {
            failure = $"GET /health failed: {e.Message}";
        }
        catch (OperationCanceledException)
        {
            return; // the router is stopping
        }
        if (replica.EndProbe(ticket, failure) != true) return;
        if (failure == null) log.LogWarning("replica {Replica} is healthy again and back in rotation", replica.Name);
        else log.LogWarning("replica {Replica} taken out of rotation: {Failure}", replica.Name, failure);
    }

    public override void Dispose()
    {
        _client.Dispose();
        base.Dispose();
    }
}
