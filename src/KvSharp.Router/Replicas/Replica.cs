namespace KvSharp.Router.Replicas;

/// <summary>
/// One kvsharp serve replica as the router sees it: its address, whether it is in rotation, and how many requests
/// it is serving now (the load that bounds affinity). Health is optimistic at start; the first probe or the first
/// failed request corrects it.
/// </summary>
public sealed class Replica
{
    private int _inFlight;
    private long _requests, _retries, _midStreamFailures;
    private volatile bool _healthy = true;
    // Probes in the order they began, and the latest whose answer was applied: an answer older than that is stale.
    private long _probesBegun, _probeApplied;
    private readonly object _probeLock = new();

    internal Replica(int index, Uri address)
    {
        Index = index;
        Address = address;
        Name = address.GetLeftPart(UriPartial.Authority);
        // YARP appends the request path to this prefix; a replica given with a path keeps it.
        Prefix = address.GetLeftPart(UriPartial.Path).TrimEnd('/');
        Tag = TagOf(Name);
    }

    /// <summary>
    /// What the replica's stored responses are tagged with (<c>resp_TAG_...</c>, set through the x-kvsharp-route header):
    /// 8 hex digits of a hash of <see cref="Name"/> (FNV-1a), so a router restarted with its replicas in another order
    /// still finds where each response is stored.
    /// </summary>
    public string Tag { get; }

    private static string TagOf(string name)
    {
        uint hash = 2166136261;
        foreach (char c in name) hash = (hash ^ c) * 16777619;
        return hash.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
    }

    public int Index { get; }
    public Uri Address { get; }
    /// <summary>scheme://host:port: what the router reports in x-kvsharp-replica, /router/replicas and metrics.</summary>
    public string Name { get; }
    internal string Prefix { get; }
    public bool Healthy => _healthy;
    public int InFlight => Volatile.Read(ref _inFlight);
    /// <summary>Requests this replica answered (completely, or with its own error status).</summary>
    public long Requests => Interlocked.Read(ref _requests);
    /// <summary>Requests that failed here before any byte reached the client and were sent to another replica.</summary>
    public long Retries => Interlocked.Read(ref _retries);
    /// <summary>Responses cut here after they had started: the client got an error.</summary>
    public long MidStreamFailures => Interlocked.Read(ref _midStreamFailures);
    /// <summary>Why the replica was last taken out of rotation (null while healthy).</summary>
    public string? DownReason { get; private set; }

    internal void Begin() => Interlocked.Increment(ref _inFlight);
    internal void End() => Interlocked.Decrement(ref _inFlight);
    internal void CountAnswered() => Interlocked.Increment(ref _requests);
    internal void CountRetry() => Interlocked.Increment(ref _retries);
    internal void CountMidStreamFailure() => Interlocked.Increment(ref _midStreamFailures);

    /// <summary>A health probe begins: its ticket for <see cref="EndProbe"/>.</summary>
    internal long BeginProbe() => Interlocked.Increment(ref _probesBegun);

    /// <summary>
    /// A probe's answer: <paramref name="failure"/> null puts the replica back, else takes it out. An answer from a probe
    /// that began before the last applied one is dropped (returns null): a probe that was slow to fail while the replica
    /// restarted must not take out a replica that a later probe found healthy. Else true when the rotation changed.
    /// </summary>
    internal bool? EndProbe(long ticket, string? failure)
    {
        lock (_probeLock)
        {
            if (ticket < _probeApplied) return null;
            _probeApplied = ticket;
            return failure == null ? MarkUp() : MarkDown(failure);
        }
    }

    /// <summary>Takes the replica out of rotation; true when it was in.</summary>
    internal bool MarkDown(string reason)
    {
        DownReason = reason;
        bool was = _healthy;
        _healthy = false;
        return was;
    }

    /// <summary>Puts the replica back; true when it was out.</summary>
    internal bool MarkUp()
    {
        bool was = _healthy;
        _healthy = true;
        DownReason = null;
        return !was;
    }
}
