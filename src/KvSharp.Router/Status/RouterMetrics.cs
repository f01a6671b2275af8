using System.Diagnostics.Metrics;
using KvSharp.Router.Replicas;

namespace KvSharp.Router.Status;

/// <summary>
/// The router's System.Diagnostics.Metrics (meter "KvSharp.Router"), exported at GET /metrics: requests answered,
/// retries and mid-stream failures per replica (counters), and per replica its in-flight requests and health (gauges).
/// </summary>
internal sealed class RouterMetrics : IDisposable
{
    public const string MeterName = "KvSharp.Router";
    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _requests, _retries, _midStream, _unserved;

    public RouterMetrics(ReplicaSet replicas)
    {
        _requests = _meter.CreateCounter<long>("kvsharp_router_requests", description: "requests a replica answered");
        _retries = _meter.CreateCounter<long>("kvsharp_router_retries", description: "tries that failed on a replica before any byte reached the client, and went to another");
        _midStream = _meter.CreateCounter<long>("kvsharp_router_midstream_failures", description: "responses cut after they had started (the client got an error)");
        _unserved = _meter.CreateCounter<long>("kvsharp_router_unserved", description: "requests no replica could serve (the client got 502 or 503)");
        _meter.CreateObservableGauge("kvsharp_router_in_flight", () => replicas.All.Select(r => new Measurement<int>(r.InFlight, Tag(r))),
            description: "requests being served per replica");
        _meter.CreateObservableGauge("kvsharp_router_replica_healthy", () => replicas.All.Select(r => new Measurement<int>(r.Healthy ? 1 : 0, Tag(r))),
            description: "1 while the replica is in rotation");
    }

    public void Answered(Replica r) { r.CountAnswered(); _requests.Add(1, Tag(r)); }
    public void Retried(Replica r) { r.CountRetry(); _retries.Add(1, Tag(r)); }
    public void MidStreamFailure(Replica r) { r.CountMidStreamFailure(); _midStream.Add(1, Tag(r)); }
    public void Unserved() => _unserved.Add(1);

    private static KeyValuePair<string, object?> Tag(Replica r) => new("replica", r.Name);

    public void Dispose() => _meter.Dispose();
}
