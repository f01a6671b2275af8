namespace KvSharp.Cache.Paged;

/// <summary>
/// What a <see cref="KvBlockPool"/> asks of its prefix cache (<see cref="PrefixCache"/>), so the pool itself stays
/// storage, refcounts and a free list: which blocks are published (never written in place), which to keep when
/// their last holder lets go, and which to give back when the pool has no free block.
/// </summary>
internal interface ICachedBlocks
{
    /// <summary>Blocks kept that nobody holds.</summary>
    int Count { get; }

    /// <summary>The block's contents are published: other sequences may adopt them, so a writer copies it first.</summary>
    bool IsPublished(int block);

    /// <summary>The last holder let go of <paramref name="block"/>: true keeps it cached, off the pool's free list.</summary>
    bool Keep(int block);

    /// <summary>A kept block is held again (a prefix hit); false if the cache was not keeping it.</summary>
    bool Reuse(int block);

    /// <summary>The pool has no free block: forget the least recently used kept block and hand it over.</summary>
    bool TryEvict(out int block);
}
