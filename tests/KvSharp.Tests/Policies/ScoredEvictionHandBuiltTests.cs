using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Policies;
using KvSharp.Models;

namespace KvSharp.Tests.Policies;

/// <summary>
/// H2O and SnapKV on hand-built keys, driven through the cache's forward-pass interface: one layer, one head, every
/// query (1, 0, ..., 0) at scale 1, so a key's score is its first element. Positions whose key starts with 8 draw
/// nearly all the attention; the rest start with 0. What each policy keeps is then worked out by hand.
/// </summary>
public class ScoredEvictionHandBuiltTests
{
    private const int HeadDim = 8;

    private static readonly ModelConfig Config = new()
    {
        Architecture = "llama", EmbeddingDim = HeadDim, LayerCount = 1, HeadCount = 1, KvHeadCount = 1, HeadDim = HeadDim,
        FeedForwardDim = 8, VocabSize = 1, TrainedContextLength = 64, RmsNormEps = 1e-5f, RopeTheta = 10000f,
        RopeStyle = RopeStyle.Normal, RopeDimensions = HeadDim,
    };

    /// <summary>Runs positions [Length, Length + count) as one step: key p starts with strength(p), value p is p in every element.</summary>
    private static void Step(KvCache cache, int count, Func<int, float> strength)
    {
        IKvStore store = cache;
        int first = cache.Length;
        store.Reserve(first + count);
        for (int p = first; p < first + count; p++)
        {
            var key = new float[HeadDim];
            key[0] = strength(p);
            store.Write(0, p, key, Enumerable.Repeat((float)p, HeadDim).ToArray());
        }
        var queries = new float[count * HeadDim];
        for (int t = 0; t < count; t++) queries[t * HeadDim] = 1;
        var output = new float[count * HeadDim];
        store.Attend(0, 0, new QueryBlock(queries, output, count, HeadDim, first, 1, HeadDim), 1f, new float[CausalAttention.ScratchLength(count)]);
        store.Commit(first + count);
    }

    [Fact]
    public void HeavyHittersKeepTheHeaviestAndTheRecent()
    {
        // Budget 5, the 2 most recent protected, heavy keys at 3 and 6. Position 0 stays too: its own query gave it all
        // of its attention (1.0) and every later query a little, more than any light position gathers; 1, 2, 4, 5 ...
        // each leave as soon as they are older than the recent two. Accumulated mass at the end (by hand, in double):
        // 0: 1.84, 3: 6.99, 6: 4.00, against at most 0.84 for any light position when it went.
        var cache = new KvCache(Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("h2o:5+recent:2"));
        for (int p = 0; p < 14; p++) Step(cache, 1, q => q is 3 or 6 ? 8 : 0);
        Assert.Equal([0, 3, 6, 12, 13], cache.PositionsHeld(0, 0));
        Assert.Equal(6, cache.Capacity);

        // The same tokens as one prefill chunk: the same positions (each query still evicts before it attends).
        var chunked = new KvCache(Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("h2o:5+recent:2"));
        Step(chunked, 14, q => q is 3 or 6 ? 8 : 0);
        Assert.Equal([0, 3, 6, 12, 13], chunked.PositionsHeld(0, 0));
        Assert.Equal(5, chunked.HeldPositions);
        var row = new float[HeadDim];
        chunked.ReadValue(0, 0, 6, row);
        Assert.Equal(6f, row[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => chunked.ReadValue(0, 0, 7, row));
    }

    [Fact]
    public void OfEqualMassesTheOldestGoes()
    {
        // Keys 1 and 2 score -200: exp underflows to 0, so no query (not even their own) gives them any mass, and they
        // tie at exactly 0. Budget 3, nothing protected but the query: at position 3 one of 0, 1, 2 must go; 0 holds
        // 3.0, and of the two at 0 the older, 1, goes. At 4, 2 (still 0) goes before 3 (0.5 from its own query).
        var cache = new KvCache(Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("h2o:3+recent:0"));
        Func<int, float> strength = p => p is 1 or 2 ? -200 : 0;
        for (int p = 0; p < 4; p++) Step(cache, 1, strength);
        Assert.Equal([0, 2, 3], cache.PositionsHeld(0, 0));
        Step(cache, 1, strength);
        Assert.Equal([0, 3, 4], cache.PositionsHeld(0, 0));
    }

    [Fact]
    public void SnapKvKeepsTheVotedNeighbourhoodAndTheObservationWindow()
    {
        // A prefill of 12 with budget 5 and an observation window of 2: queries 10 and 11 vote for the first 10
        // positions, almost all for 3 (key 8), some for 8 (key 6). Max-pooling over 7 spreads 3's vote to 0..6 and 8's
        // to 7..9; the 3 earlier positions kept are the top 3 pooled, 7 tied at 3's vote: the newest of them, 4, 5, 6.
        var cache = new KvCache(Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("snapkv:5+obs:2"));
        Func<int, float> strength = p => p == 3 ? 8 : p == 8 ? 6 : 0;
        Step(cache, 12, strength);
        Assert.Equal([4, 5, 6, 10, 11], cache.PositionsHeld(0, 0));
        // Decode appends without evicting.
        Step(cache, 1, strength);
        Step(cache, 1, strength);
        Assert.Equal([4, 5, 6, 10, 11, 12, 13], cache.PositionsHeld(0, 0));
        // Back to the compression point drops what decode appended; below it, the votes of dropped queries chose.
        cache.Truncate(13);
        Assert.Equal([4, 5, 6, 10, 11, 12], cache.PositionsHeld(0, 0));
        Assert.Contains("compressed the sequence at 12 tokens", Assert.Throws<InvalidOperationException>(() => cache.Truncate(11)).Message);
        // A later prefill compresses again to 5, its own last 2 kept.
        Step(cache, 3, strength);
        Assert.Equal(5, cache.HeldPositions);
        Assert.Equal([14, 15], cache.PositionsHeld(0, 0)[^2..]);
        cache.Reset();
        Assert.Empty(cache.PositionsHeld(0, 0));
        Step(cache, 12, strength);
        Assert.Equal([4, 5, 6, 10, 11], cache.PositionsHeld(0, 0));
    }

    [Fact]
    public void HeavyHittersRefuseTruncationButResetStartsOver()
    {
        var cache = new KvCache(Config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.F32), KvCachePolicy.Parse("h2o:5+recent:2"));
        Step(cache, 14, q => q is 3 or 6 ? 8 : 0);
        var error = Assert.Throws<InvalidOperationException>(() => cache.Truncate(10));
        Assert.Contains("'h2o:5'", error.Message);
        Assert.Contains("cannot be taken back", error.Message);
        cache.Truncate(14);
        Assert.Contains("does not apply", Assert.Throws<InvalidOperationException>(() => cache.Shift(1, 4, new RotaryEmbedding(Config, null))).Message);
        cache.Truncate(0);
        Assert.Empty(cache.PositionsHeld(0, 0));
        for (int p = 0; p < 14; p++) Step(cache, 1, q => q is 3 or 6 ? 8 : 0);
        Assert.Equal([0, 3, 6, 12, 13], cache.PositionsHeld(0, 0));
        cache.Reset();
        Step(cache, 14, q => q is 3 or 6 ? 8 : 0);
        Assert.Equal([0, 3, 6, 12, 13], cache.PositionsHeld(0, 0));
    }
}
