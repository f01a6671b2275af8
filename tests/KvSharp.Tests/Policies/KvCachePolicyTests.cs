using KvSharp.Cache;
using KvSharp.Models;
using KvSharp.Cache.Policies;

namespace KvSharp.Tests.Policies;

public class KvCachePolicyTests
{
    [Theory]
    [InlineData("full", "full", 0, null)]
    [InlineData("window:64", "window:64", 0, 64)]
    [InlineData(" Window:1 ", "window:1", 0, 1)]
    [InlineData("sinks:4+window:124", "sinks:4+window:124", 4, 124)]
    [InlineData("sinks:0+window:8", "window:8", 0, 8)]
    public void ParsesEachForm(string text, string name, int sinks, int? window)
    {
        var policy = KvCachePolicy.Parse(text);
        Assert.Equal(name, policy.ToString());
        Assert.Equal(sinks, policy.Sinks);
        Assert.Equal(window, policy.Window);
        Assert.Equal(policy, KvCachePolicy.Parse(policy.ToString()));
    }

    [Theory]
    [InlineData("", "expected full")]
    [InlineData("window", "expected full")]
    [InlineData("window:", "whole numbers")]
    [InlineData("window:x", "whole numbers")]
    [InlineData("window:0", "at least 1 position, got 0")]
    [InlineData("window:-3", "at least 1 position, got -3")]
    [InlineData("sinks:4+window:0", "at least 1 position, got 0")]
    [InlineData("sinks:-1+window:8", "sinks must be 0 or more, got -1")]
    [InlineData("sinks:4", "whole numbers")]
    [InlineData("window:8+sinks:4", "whole numbers")]
    [InlineData("sinks:1+sinks:2+window:3", "expected full")]
    [InlineData("h2o", "expected full")]
    [InlineData("h2o:", "whole numbers")]
    [InlineData("h2o:x", "whole numbers")]
    [InlineData("h2o:0", "at least 1 position, got 0")]
    [InlineData("h2o:-4", "at least 1 position, got -4")]
    [InlineData("h2o:8+recent:8", "less than the budget 8")]
    [InlineData("h2o:8+recent:-1", "got -1")]
    [InlineData("h2o:8+obs:2", "whole numbers")]
    [InlineData("h2o:8+recent:2+recent:3", "expected full")]
    [InlineData("snapkv:0", "at least 1 position, got 0")]
    [InlineData("snapkv:8+obs:0", "at least 1 and at most the budget 8, got 0")]
    [InlineData("snapkv:8+obs:9", "at least 1 and at most the budget 8, got 9")]
    [InlineData("snapkv:8+recent:2", "whole numbers")]
    [InlineData("sinks:4+h2o:8", "whole numbers")]
    public void RejectsBadStringsNamingThem(string text, string why)
    {
        var e = Assert.Throws<FormatException>(() => KvCachePolicy.Parse(text));
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Theory]
    [InlineData("h2o:64", "h2o:64", KvEviction.HeavyHitters, 64, 32, 0)]
    [InlineData("H2O:64+Recent:32", "h2o:64", KvEviction.HeavyHitters, 64, 32, 0)]
    [InlineData("h2o:64+recent:0", "h2o:64+recent:0", KvEviction.HeavyHitters, 64, 0, 0)]
    [InlineData("h2o:1", "h2o:1", KvEviction.HeavyHitters, 1, 0, 0)]
    [InlineData("snapkv:128", "snapkv:128", KvEviction.SnapKv, 128, 0, 16)]
    [InlineData("snapkv:128+obs:32", "snapkv:128+obs:32", KvEviction.SnapKv, 128, 0, 32)]
    [InlineData("snapkv:20", "snapkv:20", KvEviction.SnapKv, 20, 0, 10)]
    [InlineData("snapkv:1", "snapkv:1", KvEviction.SnapKv, 1, 0, 1)]
    [InlineData("snapkv:8+obs:8", "snapkv:8+obs:8", KvEviction.SnapKv, 8, 0, 8)]
    public void ParsesTheScoreBasedForms(string text, string name, KvEviction eviction, int budget, int recent, int observation)
    {
        var policy = KvCachePolicy.Parse(text);
        Assert.Equal(name, policy.ToString());
        Assert.Equal(eviction, policy.Eviction);
        Assert.Equal(budget, policy.Budget);
        Assert.Equal(recent, policy.Recent);
        Assert.Equal(observation, policy.Observation);
        Assert.True(policy.EvictsByScore);
        Assert.False(policy.KeepsEverything);
        Assert.Null(policy.Window);
        Assert.Equal(policy, KvCachePolicy.Parse(policy.ToString()));
        Assert.Equal(policy, eviction == KvEviction.HeavyHitters ? KvCachePolicy.HeavyHitters(budget, recent) : KvCachePolicy.SnapKv(budget, observation));
        Assert.Contains("attention scores", Assert.Throws<InvalidOperationException>(() => policy.KeptPositions(3)).Message);
    }

    [Fact]
    public void ScoreBasedFactoriesRejectBadNumbers()
    {
        Assert.Contains("h2o:4+recent:4", Assert.Throws<ArgumentOutOfRangeException>(() => KvCachePolicy.HeavyHitters(4, 4)).Message);
        Assert.Contains("snapkv:0", Assert.Throws<ArgumentOutOfRangeException>(() => KvCachePolicy.SnapKv(0)).Message);
        Assert.Contains("'h2o:513' keeps 513 positions, more than the context length of 512",
            Assert.Throws<ArgumentException>(() => KvCachePolicy.Parse("h2o:513").Validate(512)).Message);
        Assert.Contains("'snapkv:513' keeps 513 positions", Assert.Throws<ArgumentException>(() => KvCachePolicy.Parse("snapkv:513").Validate(512)).Message);
        KvCachePolicy.Parse("h2o:512").Validate(512);
    }

    [Fact]
    public void RejectsABudgetLargerThanTheContext()
    {
        KvCachePolicy.Parse("sinks:4+window:508").Validate(512);
        var e = Assert.Throws<ArgumentException>(() => KvCachePolicy.Parse("sinks:4+window:509").Validate(512));
        Assert.Contains("'sinks:4+window:509' keeps 513 positions, more than the context length of 512", e.Message);
        KvCachePolicy.Full.Validate(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => KvCachePolicy.SlidingWindow(0));
    }

    [Fact]
    public void KeptPositionsAreTheSinksThenTheWindow()
    {
        var policy = KvCachePolicy.Parse("sinks:2+window:3");
        Assert.Equal([0], policy.KeptPositions(0));
        Assert.Equal([0, 1, 2, 3, 4], policy.KeptPositions(4));
        Assert.Equal([0, 1, 3, 4, 5], policy.KeptPositions(5));
        Assert.Equal([0, 1, 98, 99, 100], policy.KeptPositions(100));
        Assert.Equal([8, 9, 10], KvCachePolicy.SlidingWindow(3).KeptPositions(10));
        Assert.Equal([0, 1, 2], KvCachePolicy.Full.KeptPositions(2));
    }

    [Theory]
    [InlineData("window:16")]
    [InlineData("sinks:2+window:16")]
    [InlineData("h2o:16")]
    [InlineData("snapkv:16")]
    public void AWindowOverAGroupQuantizedKvTypeIsRefused(string policy)
    {
        var config = new ModelConfig
        {
            Architecture = "llama", EmbeddingDim = 32, LayerCount = 2, HeadCount = 4, KvHeadCount = 4, HeadDim = 8,
            FeedForwardDim = 8, VocabSize = 1, TrainedContextLength = 64, RmsNormEps = 1e-5f, RopeTheta = 10000f,
            RopeStyle = RopeStyle.Normal, RopeDimensions = 8,
        };
        var error = Assert.Throws<NotSupportedException>(() =>
            new KvCache(config, KvCacheMode.Contiguous, 64, KvElementFormat.Of(KvElementType.Kivi4), KvCachePolicy.Parse(policy)));
        Assert.Contains(policy, error.Message);
    }
}
