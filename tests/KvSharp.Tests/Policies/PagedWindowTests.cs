using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;

namespace KvSharp.Tests.Policies;

/// <summary>
/// A paged sequence under a window policy computes the windowed contiguous cache's logits bit for bit (the kernel
/// reads the same kept rows in the same order through a block table), gives back every block wholly behind the
/// window as it moves, and refuses what cannot be right with a window: prefix-cache blocks, and forks that would
/// share the sink keys it re-rotates.
/// </summary>
public class PagedWindowTests
{
    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 }));

    private static int[] Prompt(int vocab, int length = 150)
    {
        var rng = new Random(31);
        return [1, .. Enumerable.Range(0, length - 1).Select(_ => rng.Next(3, vocab))];
    }

    [Theory]
    [InlineData("window:40", 16)]
    [InlineData("sinks:4+window:28", 16)]
    [InlineData("sinks:5+window:9", 4)]
    [InlineData("window:1", 3)]
    public void MatchesTheContiguousCacheAndFreesBlocksBehindTheWindow(string text, int blockSize)
    {
        var model = Model.Value;
        var policy = KvCachePolicy.Parse(text);
        int vocab = model.Config.VocabSize;
        var prompt = Prompt(vocab);
        var contiguous = model.CreateCache(policy, contextLength: 160);
        var expected = new List<float>();
        expected.AddRange(model.Evaluate(prompt.AsSpan(0, 37), contiguous, allLogits: true));
        for (int t = 37; t < prompt.Length; t++) expected.AddRange(model.Evaluate(prompt.AsSpan(t, 1), contiguous));

        using var pool = new KvBlockPool(model.Config, blockSize, 200);
        var paged = new PagedKvSequence(pool, 160, policy, model.Rope);
        var forward = model.CreateForwardPass();
        var logits = new float[37 * vocab];
        forward.Forward(prompt.AsSpan(0, 37), paged, logits, allLogits: true);
        var actual = new List<float>(logits);
        int mostHeld = 0;
        for (int t = 37; t < prompt.Length; t++)
        {
            forward.Forward(prompt.AsSpan(t, 1), paged, logits.AsSpan(0, vocab), allLogits: false);
            actual.AddRange(logits.AsSpan(0, vocab).ToArray());
            mostHeld = Math.Max(mostHeld, paged.HeldBlocks);
        }
        Assert.Equal(expected, actual);

        // Decoding, a sequence holds its sink blocks plus the blocks its window and the next position touch.
        int sinkBlocks = (policy.Sinks + blockSize - 1) / blockSize, windowBlocks = (policy.Window!.Value + blockSize - 1) / blockSize + 1;
        Assert.InRange(mostHeld, 1, sinkBlocks + windowBlocks);
        Assert.Equal(pool.BlockCount - paged.HeldBlocks, pool.AvailableBlocks);
        paged.Release();
        Assert.Equal(pool.BlockCount, pool.AvailableBlocks);
        pool.Verify();
    }

    [Fact]
    public void RefusesPrefixBlocksAndForksOfSinks()
    {
        var model = Model.Value;
        using var pool = new KvBlockPool(model.Config, 4, 40);
        var windowed = new PagedKvSequence(pool, 64, KvCachePolicy.SlidingWindow(8));
        Assert.Contains("cannot share prefix-cache blocks", Assert.Throws<InvalidOperationException>(() => windowed.AdoptPrefix([])).Message);
        var prefixes = new PrefixCache(pool, "policies");
        var cursor = prefixes.Begin(null);
        Assert.Contains("cannot publish prefix-cache blocks", Assert.Throws<InvalidOperationException>(() => prefixes.Publish(windowed, [1, 2, 3], ref cursor)).Message);
        var sinks = new PagedKvSequence(pool, 64, KvCachePolicy.Parse("sinks:4+window:8"), model.Rope);
        model.CreateForwardPass().Forward(Prompt(model.Config.VocabSize, 6), sinks, new float[model.Config.VocabSize], allLogits: false);
        Assert.Contains("cannot be forked", Assert.Throws<InvalidOperationException>(() => sinks.Fork()).Message);
        Assert.Contains("more than the context length of 64",
            Assert.Throws<ArgumentException>(() => new PagedKvSequence(pool, 64, KvCachePolicy.SlidingWindow(65))).Message);
        sinks.Release();
        Assert.Equal(pool.BlockCount, pool.AvailableBlocks);
    }
}
