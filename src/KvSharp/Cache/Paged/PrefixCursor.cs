namespace KvSharp.Cache.Paged;

/// <summary>
/// How far one sequence's blocks are in a <see cref="PrefixCache"/>: the root of its hash chain (model identity and
/// tenant salt), how many leading blocks are already published or adopted, and the chain's hash after them.
/// Handed out by <see cref="PrefixCache.Begin"/> and advanced by Adopt and Publish; a fork copies its parent's.
/// </summary>
public struct PrefixCursor
{
    internal PrefixCursor(ulong root)
    {
        Root = root;
        LastHash = root;
    }

    /// <summary>The chain's seed: blocks under another root (model or tenant) never match.</summary>
    public ulong Root { get; }
    /// <summary>Leading blocks of the sequence that are in the cache.</summary>
    public int Blocks { get; internal set; }
    /// <summary>The chain's hash after those blocks (the root when there are none).</summary>
    public ulong LastHash { get; internal set; }

    /// <summary>The same chain from its start, for a sequence that gave up its blocks and will be recomputed.</summary>
    public readonly PrefixCursor Restart() => new(Root);
}
