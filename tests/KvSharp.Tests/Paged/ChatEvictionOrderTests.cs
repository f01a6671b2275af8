using KvSharp.Cache.Paged;
using KvSharp.Models;

namespace KvSharp.Tests.Paged;

/// <summary>
/// Which cached blocks the pool gives up first under multi-turn chat, where conversations come back in a cycle: a tail
/// that a conversation's next turn has since covered goes before anyone's history, and the prefixes that queued
/// requests will adopt (<see cref="PrefixCache.Refresh"/>) go after every other cached block.
/// </summary>
public class ChatEvictionOrderTests
{
    private static Lazy<ModelConfig> Config => PrefixCacheTests.Config;

    private static int[] Range(int start, int count) => Enumerable.Range(start, count).ToArray();

    /// <summary>A finished turn: adopts what the cache holds of <paramref name="tokens"/>, computes the rest, publishes its blocks and tail, lets go.</summary>
    private static PagedKvSequence Turn(PrefixCache cache, int[] tokens)
    {
        var seq = new PagedKvSequence(cache.Pool, 64);
        var cursor = cache.Begin(null);
        cache.Adopt(seq, tokens, ref cursor);
        seq.Reserve(tokens.Length);
        seq.Commit(tokens.Length);
        cache.Publish(seq, tokens, ref cursor);
        cache.PublishTail(seq, tokens, ref cursor);
        seq.Release();
        return seq;
    }

    /// <summary>Allocates blocks until the cache gives one up; they stay held.</summary>
    private static void EvictOne(PrefixCache cache)
    {
        int cached = cache.CachedBlocks;
        while (cache.CachedBlocks == cached) cache.Pool.Allocate();
    }

    private static int Adopted(PrefixCache cache, int[] tokens)
    {
        var seq = new PagedKvSequence(cache.Pool, 64);
        var cursor = cache.Begin(null);
        int adopted = cache.Adopt(seq, tokens, ref cursor);
        seq.Release();
        return adopted;
    }

    [Fact]
    public void ATailTheNextTurnCoveredGoesBeforeAnotherConversationsHistory()
    {
        using var pool = new KvBlockPool(Config.Value, 4, 8);
        var cache = new PrefixCache(pool, "test-model");
        // Turn 1 of a conversation: a full block and a tail of two tokens (104, 105).
        int[] turn1 = Range(100, 6);
        var first = new PagedKvSequence(pool, 64);
        var cursor = cache.Begin(null);
        first.Reserve(6);
        first.Commit(6);
        cache.Publish(first, turn1, ref cursor);
        cache.PublishTail(first, turn1, ref cursor);
        int tail = first.BlockTable[1];
        first.Release();
        // Another user's conversation of two whole blocks, cached after it.
        int[] other = Range(500, 8);
        Turn(cache, other);
        // Turn 2 takes the tail's rows, copies the tail on its first write and fills the copy: the tail is now redundant.
        Turn(cache, [.. turn1, .. Range(106, 5)]);
        Assert.True(cache.IsPublished(tail));

        EvictOne(cache);
        Assert.False(cache.IsPublished(tail));
        Assert.Equal(7, Adopted(cache, other));
        pool.Verify();
    }

    [Fact]
    public void AQueuedRequestsPrefixIsEvictedAfterEveryOtherCachedBlock()
    {
        using var pool = new KvBlockPool(Config.Value, 4, 6);
        var cache = new PrefixCache(pool, "test-model");
        // Two conversations of two blocks each; the first, least recently used, is about to run again (queued).
        int[] next = Range(100, 8), later = Range(200, 8);
        Turn(cache, next);
        Turn(cache, later);
        Assert.Equal(2, cache.Refresh([.. next, 1, 2], cache.Begin(null).Root));

        // The two free blocks, then the other conversation's deepest block, then its first.
        EvictOne(cache);
        EvictOne(cache);
        Assert.Equal(7, Adopted(cache, [.. next]));
        Assert.Equal(0, Adopted(cache, [.. later]));
        pool.Verify();
    }
}
