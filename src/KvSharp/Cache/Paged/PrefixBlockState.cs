namespace KvSharp.Cache.Paged;

/// <summary>
/// One block as the prefix cache sees it (<see cref="PrefixCache.Describe"/>), for inspectors: whether it is published,
/// whether it is kept with no holder (cached, evictable), the root of its hash chain (model and tenant salt), the block
/// before it in the chain, and how many times a request adopted it.
/// </summary>
/// <param name="Parent">The previous block of the chain; -1 for a chain's first block; <see cref="Orphaned"/> when that
/// block was evicted and reused since, so nothing can reach this one any more.</param>
public readonly record struct PrefixBlockState(bool Published, bool Cached, ulong Root, int Parent, int Hits)
{
    public const int Orphaned = -2;
}
