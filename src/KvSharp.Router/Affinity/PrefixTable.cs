namespace KvSharp.Router.Affinity;

/// <summary>
/// Which replica last served each prefix hash: a fixed-size, direct-mapped table (a hash's low bits pick its slot; a
/// newer hash in the same slot replaces the older one), so memory stays bounded however many conversations pass
/// and an entry that is forgotten only costs a consistent-hash fallback. This is what keeps a conversation on its
/// replica as it grows: turn n+1's chain extends turn n's, whose hashes were recorded here.
/// </summary>
internal sealed class PrefixTable
{
    private readonly ulong[] _hashes;
    private readonly int[] _replicas;
    private readonly int _mask;
    private readonly Lock _lock = new();
    // Slots naming each replica: the blocks the router believes it holds (an estimate: a replica's engine evicts
    // blocks the table still names, and a slot taken by a newer hash forgets the older one).
    private readonly int[] _held;

    public PrefixTable(int slotsLog2 = 18, int replicas = Replicas.ReplicaSet.MaxReplicas)
    {
        _hashes = new ulong[1 << slotsLog2];
        _replicas = new int[1 << slotsLog2];
        _mask = (1 << slotsLog2) - 1;
        _held = new int[replicas];
    }

    /// <summary>Records that <paramref name="replica"/> now holds every prefix in <paramref name="chain"/>.</summary>
    public void Record(ReadOnlySpan<ulong> chain, int replica)
    {
        lock (_lock)
            foreach (ulong h in chain)
            {
                int slot = (int)h & _mask;
                if (_replicas[slot] != 0) _held[_replicas[slot] - 1]--;
                _hashes[slot] = h;
                _replicas[slot] = replica + 1; // 0 = empty
                _held[replica]++;
            }
    }

    /// <summary>Prefix blocks the table names <paramref name="replica"/> for: roughly how much cached KV the router has sent it.</summary>
    public int HeldBlocks(int replica)
    {
        lock (_lock) return _held[replica];
    }

    /// <summary>The deepest prefix of <paramref name="chain"/> with a known replica that <paramref name="usable"/> accepts: (depth, replica), or (0, -1).</summary>
    public (int Depth, int Replica) LongestMatch(ReadOnlySpan<ulong> chain, Func<int, bool> usable)
    {
        lock (_lock)
            for (int i = chain.Length - 1; i >= 0; i--)
            {
                int slot = (int)chain[i] & _mask;
                if (_hashes[slot] == chain[i] && _replicas[slot] != 0 && usable(_replicas[slot] - 1)) return (i + 1, _replicas[slot] - 1);
            }
        return (0, -1);
    }
}
