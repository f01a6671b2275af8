namespace KvSharp.Router.Replicas;

/// <summary>The router's replicas, in the order given on the command line (a replica's index is its bit in a try mask).</summary>
public sealed class ReplicaSet
{
    /// <summary>Replicas are tracked in a 64-bit mask per request (those already tried).</summary>
    public const int MaxReplicas = 64;

    internal ReplicaSet(IReadOnlyList<Uri> addresses) => All = addresses.Select((a, i) => new Replica(i, a)).ToArray();

    public IReadOnlyList<Replica> All { get; }
    public int HealthyCount => All.Count(r => r.Healthy);
}
