namespace KvSharp.Cache.Paged;

/// <summary>The block pool has no free or evictable block left. The engine answers by preempting a sequence.</summary>
public sealed class OutOfKvBlocksException : InvalidOperationException
{
    public OutOfKvBlocksException(int needed, int total)
        : base($"the KV block pool is exhausted: {needed} more block(s) needed, all {total} in use") { }
}
