using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Models;
using KvSharp.Tests.Cli;

namespace KvSharp.Tests.Cache;

/// <summary>
/// A cache asked for more memory than the process can get, or for a size no 64-bit count holds, says so in one line
/// (what was asked, the bytes it needs, the bytes available) before it allocates anything.
/// </summary>
public class KvCacheSizeTests
{
    private static ModelConfig Config(int layers, int kvHeads, int headDim) => new()
    {
        Architecture = "llama", EmbeddingDim = kvHeads * headDim, LayerCount = layers, HeadCount = kvHeads, KvHeadCount = kvHeads,
        HeadDim = headDim, FeedForwardDim = headDim, VocabSize = 1, TrainedContextLength = 16, RmsNormEps = 1e-5f,
        RopeTheta = 10000f, RopeStyle = RopeStyle.Normal, RopeDimensions = headDim,
    };

    [Fact]
    public void AStaticCacheLargerThanMemorySaysWhatItNeeds()
    {
        var config = Config(5, 4, 8); // stories260K's shape: 1,280 bytes per F32 token
        var e = Assert.Throws<KvCacheSizeException>(() => new KvCache(config, KvCacheMode.Static, int.MaxValue));
        Assert.Equal(
            $"a static KV cache of 2,147,483,647 positions (F32, 1,280 bytes per position) needs 2,748,779,068,160 bytes, more than the {KvSizing.AvailableBytes:N0} bytes of memory available",
            e.Message);
        Assert.Equal((Int128)1280 * int.MaxValue, e.RequestedBytes);
        var q8 = Assert.Throws<KvCacheSizeException>(() => new KvCache(config, KvCacheMode.Static, int.MaxValue, KvElementType.Q8_0));
        Assert.StartsWith("a static KV cache of 2,147,483,647 positions (Q8_0, 480 bytes per position) needs", q8.Message);
    }

    [Fact]
    public void ASizeBeyondAny64BitCountIsRejectedNotOverflowed()
    {
        var huge = Config(100_000, 1_000, 1_000); // 800 GB per token
        var e = Assert.Throws<KvCacheSizeException>(() => new KvCache(huge, KvCacheMode.Static, 100_000_000));
        Assert.True(e.RequestedBytes > long.MaxValue);
        Assert.Contains("needs 80,000,000,000,000,000,000 bytes", e.Message);
        Assert.Throws<KvCacheSizeException>(() => new KvBlockPool(huge, 1 << 20, int.MaxValue));
    }

    [Fact]
    public void AContiguousCacheChecksEachGrowthAndKeepsWhatItHas()
    {
        var config = Config(5, 4, 8);
        var cache = new KvCache(config, KvCacheMode.Contiguous, int.MaxValue); // starts small
        cache.EnsureCapacity(1000);
        var e = Assert.Throws<KvCacheSizeException>(() => cache.EnsureCapacity(int.MaxValue));
        Assert.StartsWith("a contiguous KV cache of 2,147,483,647 positions (F32", e.Message);
        Assert.Equal(1000, cache.Capacity);
    }

    [Fact]
    public void OneHeadsRowsMustFitInAnArray()
    {
        // 1 layer x 1 head x 8 dims: 64 bytes a token, so 70 M positions are 4.5 GB in all but 2.24 GB for one head's keys.
        var config = Config(1, 1, 8);
        if (KvSizing.AvailableBytes < 70_000_000L * 64) Assert.Skip("needs 4.5 GB of available memory to reach the array limit first");
        var e = Assert.Throws<KvCacheSizeException>(() => new KvCache(config, KvCacheMode.Static, 70_000_000));
        Assert.Contains("needs 2,240,000,000 bytes in one array (one KV head's rows), more than a .NET array holds", e.Message);
    }

    [Fact]
    public void APoolLargerThanMemorySaysWhatItNeeds()
    {
        var config = Config(5, 4, 8);
        var e = Assert.Throws<KvCacheSizeException>(() => new KvBlockPool(config, 16, int.MaxValue, elementType: KvElementType.F16));
        Assert.StartsWith(
            "a KV block pool of 2,147,483,647 blocks of 16 positions (F16, 10,240 bytes per block) needs 21,990,232,545,280 bytes, more than the",
            e.Message);
        var budget = Assert.Throws<KvCacheSizeException>(() => KvBlockPool.FromBudget(config, 16, long.MaxValue));
        Assert.StartsWith($"a KV budget of {long.MaxValue:N0} bytes (F32) needs {long.MaxValue:N0} bytes, more than the", budget.Message);
        using var fits = KvBlockPool.FromBudget(config, 16, 1 << 20);
        Assert.Equal((1 << 20) / (16 * 1280), fits.BlockCount);
    }
}
