using KvSharp.Cache.Paged;

namespace KvSharp.Router.Affinity;

/// <summary>
/// Consistent hashing: each replica owns many points (virtual nodes) on a 64-bit ring, and a key belongs to the first
/// point at or after it. Taking a replica out moves only the keys it owned, each to the next replica along the ring,
/// so the other replicas' prefix caches stay useful; many points per replica keep the shares even.
/// </summary>
internal sealed class HashRing
{
    public const int PointsPerReplica = 160;
    private readonly ulong[] _points;
    private readonly int[] _owners;
    private readonly int _replicaCount;

    public HashRing(IReadOnlyList<string> replicaNames)
    {
        _replicaCount = replicaNames.Count;
        var points = new List<(ulong Point, int Owner)>(replicaNames.Count * PointsPerReplica);
        for (int r = 0; r < replicaNames.Count; r++)
        {
            ulong seed = PrefixHasher.Seed("kvsharp-router/ring", replicaNames[r]);
            for (int v = 0; v < PointsPerReplica; v++) points.Add((PrefixHasher.Hash(seed, [v]), r));
        }
        points.Sort((a, b) => a.Point.CompareTo(b.Point));
        _points = points.Select(p => p.Point).ToArray();
        _owners = points.Select(p => p.Owner).ToArray();
    }

    /// <summary>
    /// Writes every replica once, in the order met walking the ring from <paramref name="key"/>: the first is the
    /// key's owner, the rest its fallbacks in turn. Returns how many were written (all replicas).
    /// </summary>
    public int Walk(ulong key, Span<int> order)
    {
        int start = Array.BinarySearch(_points, key);
        if (start < 0) start = ~start;
        Span<bool> seen = stackalloc bool[_replicaCount];
        int n = 0;
        for (int i = 0; i < _points.Length && n < _replicaCount; i++)
        {
            int owner = _owners[(start + i) % _points.Length];
            if (seen[owner]) continue;
            seen[owner] = true;
            order[n++] = owner;
        }
        return n;
    }
}
