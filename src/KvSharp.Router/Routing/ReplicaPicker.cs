using KvSharp.Router.Affinity;
using KvSharp.Router.Replicas;

namespace KvSharp.Router.Routing;

/// <summary>
/// Chooses the replica for a request from its prefix chain. Prefix affinity: the replica that last served the
/// deepest prefix of this prompt the router has seen (<see cref="PrefixTable"/>), when that prefix is at least
/// <see cref="RouterOptions.AffinityThreshold"/> of the prompt's blocks; else the prompt starts a new conversation (a
/// shorter match is a system prompt every conversation shares), and it goes to the replica with the least KV sent its
/// way (ties broken by the <see cref="HashRing"/> walk from the prompt's deepest hash). In both, a replica is skipped
/// when it is out of rotation, already tried for this request, or overloaded: consistent hashing with bounded loads
/// (a replica may hold at most ceil(LoadFactor x (in flight + 1) / healthy) + LoadSlack requests), so a hot prefix spills over
/// instead of queueing on one replica; but only once it is also more than <see cref="RouterOptions.LoadMargin"/> requests
/// ahead of the least loaded usable replica, since a spill costs the moved conversation its whole cached history.
/// Requests without a prompt, and the round-robin baseline, take replicas in turn.
/// </summary>
internal sealed class ReplicaPicker
{
    private readonly ReplicaSet _replicas;
    private readonly RouterOptions _options;
    private readonly HashRing _ring;
    private readonly PrefixTable _table;
    private int _next = -1;

    public ReplicaPicker(ReplicaSet replicas, RouterOptions options)
    {
        _replicas = replicas;
        _options = options;
        _ring = new HashRing(replicas.All.Select(r => r.Name).ToArray());
        _table = new PrefixTable(slotsLog2: 20, replicas: replicas.All.Count);
    }

    /// <summary>
    /// A replica for this try; when no replica is in rotation, one that is out but untried (its health check may only
    /// have been slow: a refused connection costs little, and a false alarm would otherwise fail every request until the
    /// next probe); null when every replica has been tried.
    /// </summary>
    public Replica? Pick(ReadOnlySpan<ulong> chain, ulong tried)
    {
        var picked = _options.Policy == RoutingPolicy.RoundRobin || chain.IsEmpty ? NextInTurn(tried) : ByPrefix(chain, tried);
        return picked ?? _replicas.All.FirstOrDefault(r => _replicas.HealthyCount == 0 && (tried & (1UL << r.Index)) == 0);
    }

    private Replica? ByPrefix(ReadOnlySpan<ulong> chain, ulong tried)
    {
        var all = _replicas.All;
        bool Usable(int i) => all[i].Healthy && (tried & (1UL << i)) == 0;
        int healthy = 0, inFlight = 0, least = int.MaxValue;
        for (int i = 0; i < all.Count; i++)
        {
            if (!all[i].Healthy) continue;
            healthy++;
            inFlight += all[i].InFlight;
            if (Usable(i)) least = Math.Min(least, all[i].InFlight);
        }
        if (healthy == 0) return null;
        int capacity = (int)Math.Ceiling(_options.LoadFactor * (inFlight + 1) / healthy) + _options.LoadSlack;
        bool Fits(int i) => Usable(i) && (all[i].InFlight + 1 <= capacity || all[i].InFlight + 1 - least <= _options.LoadMargin);

        var (depth, known) = _table.LongestMatch(chain, Fits);
        if (known >= 0 && depth >= _options.AffinityThreshold * chain.Length) return all[known];
        Span<int> order = stackalloc int[all.Count];
        int n = _ring.Walk(chain[^1], order);
        // A new conversation: the replica that fits with the least KV sent its way, the earliest on its ring walk of
        // those tied. With a few dozen conversations the ring alone places them lumpily (6/3/3 is common for 12 on 3),
        // and following the shared system prompt would pile them on whichever replica served it last until the load
        // bound spills them; a conversation stays where its first turn went, so a lump lasts its whole life and
        // overfills that replica's KV while another's sits idle. Two choices of the walk (the first two that fit) were
        // not enough: the least loaded replica is often third, and 24 users on 3 replicas came out 9 / 8 / 7.
        int best = -1;
        long lightest = long.MaxValue;
        foreach (int i in order[..n])
        {
            if (!Fits(i)) continue;
            long weight = Weight(i, chain.Length);
            if (weight < lightest) (best, lightest) = (i, weight);
        }
        if (best >= 0) return all[best];
        // Every usable replica is at its bound (the bound counts this request, so this is rare): the ring's first usable one.
        foreach (int i in order[..n])
            if (Usable(i)) return all[i];
        return null;
    }

    /// <summary>
    /// The KV a replica is taking on, in blocks: what the table says it holds, plus its requests in flight, counted at
    /// this prompt's size since they are recorded only once they succeed (else a burst of new conversations would all
    /// see the same counts and go to one replica).
    /// </summary>
    private long Weight(int replica, int blocks) => _table.HeldBlocks(replica) + (long)_replicas.All[replica].InFlight * blocks;

    /// <summary>Remembers that <paramref name="replica"/> now holds the KV of this prompt's blocks.</summary>
    public void Record(ReadOnlySpan<ulong> chain, Replica replica)
    {
        if (_options.Policy == RoutingPolicy.PrefixAffinity) _table.Record(chain, replica.Index);
    }

    /// <summary>Every replica, in rotation or not.</summary>
    public IReadOnlyList<Replica> Replicas => _replicas.All;

    private Replica? NextInTurn(ulong tried)
    {
        var all = _replicas.All;
        int start = Interlocked.Increment(ref _next);
        for (int k = 0; k < all.Count; k++)
        {
            var r = all[(int)((uint)(start + k) % (uint)all.Count)];
            if (r.Healthy && (tried & (1UL << r.Index)) == 0) return r;
        }
        return null;
    }
}
