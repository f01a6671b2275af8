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
    public void RejectsBadStringsNamingThem(string text, string why)
    {
        var e = Assert.Throws<FormatException>(() => KvCachePolicy.Parse(text));
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains(why, e.Message);
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
