using System.Diagnostics.Metrics;
using KvSharp.Engine;

namespace KvSharp.Server.Hosting;

/// <summary>
/// What the HTTP layer adds to the engine's metrics (meter "KvSharp.Server"): requests by how they ended, including
/// those refused for a full queue and those whose client went away; kept as plain totals too, for tests.
/// </summary>
internal sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "KvSharp.Server";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _requests;
    private long _disconnected, _refused;

    public ServerMetrics()
    {
        _requests = _meter.CreateCounter<long>("kvsharp.server.requests", "{request}", "HTTP generation requests by outcome");
    }

    /// <summary>Requests cancelled because their client disconnected.</summary>
    public long DisconnectedRequests => Interlocked.Read(ref _disconnected);
    /// <summary>Requests refused with 429.</summary>
    public long RefusedRequests => Interlocked.Read(ref _refused);

    public void Refused()
    {
        Interlocked.Increment(ref _refused);
        _requests.Add(1, new KeyValuePair<string, object?>("outcome", "queue_full"));
    }

    public void Ended(RequestStatus status, bool clientGone)
    {
        if (clientGone) Interlocked.Increment(ref _disconnected);
        string outcome = clientGone ? "disconnected" : status.ToString().ToLowerInvariant();
        _requests.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
    }

    public void Dispose() => _meter.Dispose();
}
