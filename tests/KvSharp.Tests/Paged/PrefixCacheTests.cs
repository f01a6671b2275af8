using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Tests.Paged;

/// <summary>The prefix cache on its own: hits, misses, verification under colliding hashes, salts, LRU eviction, and copy-on-write.</summary>
public class PrefixCacheTests
{
    /// <summary>stories260K's shape, loaded once (the eviction-order tests use it too).</summary>
    internal static readonly Lazy<ModelConfig> Config = new(() =>
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        return model.Config;
    });

    private static KvBlockPool Pool(int blockSize, int blocks) => new(Config.Value, blockSize, blocks);

    /// <summary>A sequence whose first <paramref name="tokens"/>.Length positions are computed (their K/V are not read here).</summary>
    private static PagedKvSequence Computed(KvBlockPool pool, int[] tokens)
    {
        var seq = new PagedKvSequence(pool, 64);
        seq.Reserve(tokens.Length);
        seq.Commit(tokens.Length);
        return seq;
    }

    private static PagedKvSequence Published(PrefixCache cache, int[] tokens, string? salt = null)
    {
        var seq = Computed(cache.Pool, tokens);
        var cursor = cache.Begin(salt);
        cache.Publish(seq, tokens, ref cursor);
        return seq;
    }

    /// <summary>A computed sequence that published its full blocks and, as a finished one does, its tail.</summary>
    private static PagedKvSequence PublishedWithTail(PrefixCache cache, int[] tokens)
    {
        var seq = Computed(cache.Pool, tokens);
        var cursor = cache.Begin(null);
        cache.Publish(seq, tokens, ref cursor);
        cache.PublishTail(seq, tokens, ref cursor);
        return seq;
    }

    /// <summary>Adopts into a fresh sequence; returns it and the positions adopted.</summary>
    private static (PagedKvSequence Seq, int Adopted) Adopt(PrefixCache cache, int[] tokens, string? salt = null)
    {
        var seq = new PagedKvSequence(cache.Pool, 64);
        var cursor = cache.Begin(salt);
        int adopted = cache.Adopt(seq, tokens, ref cursor);
        Assert.Equal(adopted / cache.Pool.BlockSize, cursor.Blocks);
        return (seq, adopted);
    }

    private static int[] Range(int start, int count) => Enumerable.Range(start, count).ToArray();

    [Fact]
    public void AHitSharesTheLongestPublishedPrefixAndLeavesOneTokenToCompute()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        var a = Published(cache, Range(100, 10)); // two full blocks and a partial one
        Assert.True(cache.IsPublished(a.BlockTable[0]) && cache.IsPublished(a.BlockTable[1]));
        Assert.False(cache.IsPublished(a.BlockTable[2]));

        var (b, adopted) = Adopt(cache, [.. Range(100, 8), 7, 7]);
        Assert.Equal(8, adopted);
        Assert.Equal(8, b.Length);
        Assert.Equal(a.BlockTable.Take(2), b.BlockTable);
        Assert.Equal(2, pool.RefCount(a.BlockTable[0]));

        // Exactly two blocks of tokens: the second block's first three rows are taken, its last token left to compute.
        var (c, exact) = Adopt(cache, Range(100, 8));
        Assert.Equal(7, exact);
        Assert.Equal(a.BlockTable.Take(2), c.BlockTable);
        // Counted short of the last token: 9 looked up for b (8 found: a's third block is still being written), 7 for c;
        // a miss adds to the queried only.
        Assert.Equal((16, 15), (cache.QueriedTokens, cache.HitTokens));
        var (d, missed) = Adopt(cache, Range(300, 5));
        Assert.Equal((0, 20, 15), (missed, cache.QueriedTokens, cache.HitTokens));

        foreach (var s in new[] { a, b, c, d }) s.Release();
        Assert.Equal(0, pool.UsedBlocks);
        Assert.Equal(2, cache.CachedBlocks);
        pool.Verify();
    }

    [Fact]
    public void ASequenceThatComputedAPublishedPrefixAgainStillPublishesWhatFollowsIt()
    {
        using var pool = Pool(4, 32);
        var cache = new PrefixCache(pool, "test-model");
        int[] shared = Range(100, 8);
        // Both prefilled the shared prefix at once: b's first two blocks duplicate a's, which the index already holds.
        var a = Published(cache, [.. shared, .. Range(200, 4)]);
        var b = Published(cache, [.. shared, .. Range(300, 8)]);
        Assert.NotEqual(a.BlockTable[1], b.BlockTable[1]);

        // b's own continuation is found behind the indexed copy of the shared prefix.
        var (c, adopted) = Adopt(cache, [.. shared, .. Range(300, 8), 9]);
        Assert.Equal(16, adopted);
        Assert.Equal(a.BlockTable.Take(2).Concat(b.BlockTable.Skip(2).Take(2)), c.BlockTable);
        // b's copies of the shared blocks were never published: once everyone lets go they are free, not cached.
        Assert.False(cache.IsPublished(b.BlockTable[0]) || cache.IsPublished(b.BlockTable[1]));
        foreach (var s in new[] { a, b, c }) s.Release();
        Assert.Equal(5, cache.CachedBlocks); // a's three and b's two of its own
        pool.Verify();
    }

    [Fact]
    public void TokensThatDifferMissFromTheBlockWhereTheyDiffer()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        Published(cache, Range(100, 12)).Release();
        Assert.Equal(4, Adopt(cache, [.. Range(100, 4), 1, .. Range(105, 7)]).Adopted);
        var (miss, none) = Adopt(cache, [1, .. Range(101, 11)]);
        Assert.Equal(0, none);
        Assert.Equal(0, miss.Length);
        Assert.Empty(miss.BlockTable);
    }

    [Fact]
    public void ACollidingHashIsAMissUnlessTheTokensMatch()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model", (_, _) => 42UL);
        var a = Published(cache, Range(100, 5));
        Assert.Equal(0, Adopt(cache, Range(200, 5)).Adopted);
        var (hit, adopted) = Adopt(cache, Range(100, 5));
        Assert.Equal(4, adopted);
        Assert.Equal(a.BlockTable[0], hit.BlockTable[0]);
    }

    [Fact]
    public void AChildNeverMatchesUnderAParentBlockReusedForAnotherPrefix()
    {
        // Second blocks starting with token 500 all collide; first blocks hash honestly.
        using var pool = Pool(2, 2);
        var cache = new PrefixCache(pool, "test-model", (parent, tokens) => tokens[0] == 500 ? 7UL : PrefixHasher.Hash(parent, tokens));
        var a = Published(cache, [1, 2, 500, 4]);
        int parent = a.BlockTable[0], child = a.BlockTable[1];
        // Someone else still holds the child, so the parent is the only block to evict.
        pool.Retain(child);
        a.Release();

        // Another prefix evicts the parent and is published in the same block.
        var b = Published(cache, [9, 9]);
        Assert.Equal(parent, b.BlockTable[0]);
        b.Release();
        pool.Release(child);

        // [9, 9] hits the reused block; the child [500, 4] was computed after [1, 2], so it must not follow it.
        var (seq, adopted) = Adopt(cache, [9, 9, 500, 4, 0]);
        Assert.Equal(2, adopted);
        Assert.Equal([parent], seq.BlockTable);
        seq.Release();
        pool.Verify();
    }

    [Fact]
    public void ASequencesTailIsEvictedBeforeItsHead()
    {
        using var pool = Pool(2, 3);
        var cache = new PrefixCache(pool, "test-model");
        int[] tokens = [1, 2, 3, 4, 5, 6];
        var a = Published(cache, tokens);
        a.Release();
        var taken = new PagedKvSequence(pool, 64);
        taken.Reserve(2);
        // The last block went; the first two still make a prefix.
        Assert.Equal(4, Adopt(cache, [.. tokens, 0]).Adopted);
    }

    [Fact]
    public void SaltsNeverShareBlocksEvenWhenEveryHashCollides()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model", (_, _) => 7UL);
        Published(cache, Range(100, 5), salt: "tenant-a").Release();
        Assert.Equal(0, Adopt(cache, Range(100, 5), salt: "tenant-b").Adopted);
        Assert.Equal(0, Adopt(cache, Range(100, 5), salt: null).Adopted);
        Assert.Equal(4, Adopt(cache, Range(100, 5), salt: "tenant-a").Adopted);
    }

    [Fact]
    public void AnotherModelsCacheNeverMatches()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        using var otherPool = Pool(4, 16);
        var other = new PrefixCache(otherPool, "another-model");
        var a = Published(cache, Range(100, 5));
        Assert.NotEqual(cache.Begin(null).Root, other.Begin(null).Root);
        Assert.Throws<ArgumentException>(() => { var c = other.Begin(null); other.Publish(a, Range(100, 5), ref c); });
    }

    [Fact]
    public void UnheldBlocksAreEvictedLeastRecentlyUsedFirst()
    {
        using var pool = Pool(2, 4);
        var cache = new PrefixCache(pool, "test-model");
        int[] x = [1, 1], y = [2, 2], z = [3, 3];
        var xs = Published(cache, x);
        var ys = Published(cache, y);
        var zs = Published(cache, z);
        xs.Release();
        zs.Release();
        ys.Release();
        Assert.Equal(3, cache.CachedBlocks);

        // A hit takes x out of the cache; released again, it is the most recently used: order z, y, x.
        var (again, adopted) = Adopt(cache, [.. x, 0]);
        Assert.Equal(2, adopted);
        Assert.Equal(2, cache.CachedBlocks);
        again.Release();

        // The free block goes first, then the oldest cached one: z.
        var fresh = new PagedKvSequence(pool, 64);
        fresh.Reserve(4);
        Assert.Equal(2, cache.CachedBlocks);
        Assert.Equal(0, Adopt(cache, [.. z, 0]).Adopted);
        var (ySeq, yHit) = Adopt(cache, [.. y, 0]);
        var (xSeq, xHit) = Adopt(cache, [.. x, 0]);
        Assert.Equal((2, 2), (yHit, xHit));
        pool.Verify();

        // Everything held: nothing left to evict.
        Assert.False(pool.TryAllocate(out _));
        foreach (var s in new[] { fresh, ySeq, xSeq }) s.Release();
        pool.Verify();
    }

    [Fact]
    public void ABlockBeingWrittenIsNeverShared()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        int[] tokens = Range(100, 6);
        var a = Published(cache, tokens);
        int published = a.BlockTable[0], partial = a.BlockTable[1];
        // The partial block is the one being written: never published, so nobody adopts it.
        Assert.False(cache.IsPublished(partial));
        Assert.False(pool.IsShared(partial));
        // A published block is shared even with one holder: rewinding into it and writing copies it first.
        Assert.Equal(1, pool.RefCount(published));
        Assert.True(pool.IsShared(published));
        a.Truncate(2);
        a.Reserve(3);
        Assert.NotEqual(published, a.BlockTable[0]);
        Assert.True(cache.IsPublished(published));
        Assert.Equal(1, cache.CachedBlocks);
        var (b, adopted) = Adopt(cache, tokens);
        Assert.Equal(4, adopted);
        Assert.Equal(published, b.BlockTable[0]);
        a.Release();
        b.Release();
        pool.Verify();
    }

    [Fact]
    public void AHitThatEndsInsideABlockSharesItUntilTheFirstWriteCopiesIt()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        Published(cache, Range(100, 8)).Release();
        // Diverges at the seventh token: the first block whole, then the second block's first two rows.
        var (b, adopted) = Adopt(cache, [.. Range(100, 6), 1, 2, 3]);
        Assert.Equal(6, adopted);
        Assert.Equal(6, b.Length);
        int shared = b.BlockTable[1];
        Assert.True(cache.IsPublished(shared));
        Assert.Equal(2, pool.UsedBlocks);
        Assert.Equal(2, b.BlocksNeeded(9)); // a copy of the shared block and one more
        b.Reserve(9);
        Assert.NotEqual(shared, b.BlockTable[1]);
        Assert.Equal(1, pool.RefCount(b.BlockTable[1]));
        // The published block is left whole for the next lookup.
        var (c, all) = Adopt(cache, [.. Range(100, 8), 5]);
        Assert.Equal(8, all);
        Assert.Equal(shared, c.BlockTable[1]);
        b.Release();
        c.Release();
        pool.Verify();
    }

    [Fact]
    public void AFinishedSequencesTailIsReusedRowByRowButNeverAsAWholeBlock()
    {
        using var pool = Pool(4, 16);
        var cache = new PrefixCache(pool, "test-model");
        int[] tokens = Range(100, 7);
        var a = PublishedWithTail(cache, tokens);
        int tail = a.BlockTable[1];
        Assert.True(cache.IsPublished(tail));
        a.Release();
        Assert.Equal(2, cache.CachedBlocks);

        // The next turn continues the history: every computed position is taken, the tail's three rows too.
        var (b, adopted) = Adopt(cache, [.. tokens, 1, 2]);
        Assert.Equal(7, adopted);
        Assert.Equal(tail, b.BlockTable[1]);
        // A tail of three tokens never stands for a whole block of four, even one that starts with them.
        var (c, rows) = Adopt(cache, [.. Range(100, 8), 9]);
        Assert.Equal(7, rows);
        Assert.Equal(2, pool.RefCount(tail));

        // The same tokens' tail again: the cached one already holds them, so the new one goes back to the pool.
        var d = PublishedWithTail(cache, tokens);
        Assert.False(cache.IsPublished(d.BlockTable[1]));
        foreach (var s in new[] { b, c, d }) s.Release();
        // a's two: d's first block duplicates a's (the cache holds its tokens already), so it was not published and
        // went back to the pool with d.
        Assert.Equal(2, cache.CachedBlocks);
        Assert.Equal(0, pool.UsedBlocks);
        pool.Verify();
    }

    [Fact]
    public void AnEvictedTailIsNoLongerFound()
    {
        using var pool = Pool(2, 3);
        var cache = new PrefixCache(pool, "test-model");
        PublishedWithTail(cache, [1, 2, 3]).Release();
        // Two blocks: the free one and the tail (released first, so evicted first); the head stays.
        var taken = new PagedKvSequence(pool, 64);
        taken.Reserve(4);
        var (b, adopted) = Adopt(cache, [1, 2, 3, 4]);
        Assert.Equal(2, adopted);
        Assert.Single(b.BlockTable);
        taken.Release();
        b.Release();
        pool.Verify();
    }

    [Fact]
    public void APoolHasOnePrefixCache()
    {
        using var pool = Pool(4, 4);
        _ = new PrefixCache(pool, "test-model");
        Assert.Throws<InvalidOperationException>(() => new PrefixCache(pool, "again"));
    }
}
