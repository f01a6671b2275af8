using KvSharp.Cache;
using KvSharp.Engine;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;

namespace KvSharp.Tests.Policies;

/// <summary>
/// A paged sequence under H2O computes the contiguous H2O cache's logits bit for bit (each head's held positions read
/// from its own slots through the block table), in any chunking, holds blocks for its budget plus a step and no more,
/// frees every block when released, and refuses what cannot be right: prefix-cache blocks, forks. Under SnapKV a prompt
/// marked as one (BeginPrompt) is compressed once at its end, so its chunking changes nothing.
/// </summary>
public class PagedHeavyHittersTests
{
    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 }));

    private static int[] Prompt(int vocab, int length = 120)
    {
        var rng = new Random(17);
        return [1, .. Enumerable.Range(0, length - 1).Select(_ => rng.Next(3, vocab))];
    }

    /// <summary>Logits of every token: the first <paramref name="prefill"/> as one step, then steps of <paramref name="chunk"/>.</summary>
    private static List<float> Run(LlmModel model, int[] prompt, KvSharp.Models.IKvStore store, int prefill, int chunk, Action? afterStep = null)
    {
        int vocab = model.Config.VocabSize;
        var forward = model.CreateForwardPass();
        var logits = new float[Math.Max(prefill, chunk) * vocab];
        var all = new List<float>();
        for (int t = 0; t < prompt.Length;)
        {
            int n = Math.Min(t == 0 ? prefill : chunk, prompt.Length - t);
            forward.Forward(prompt.AsSpan(t, n), store, logits.AsSpan(0, n * vocab), allLogits: true);
            all.AddRange(logits.AsSpan(0, n * vocab).ToArray());
            t += n;
            afterStep?.Invoke();
        }
        return all;
    }

    [Theory]
    [InlineData("h2o:24", 4, 37, 1)]
    [InlineData("h2o:24", 16, 37, 1)]
    [InlineData("h2o:10+recent:3", 3, 5, 7)]
    [InlineData("h2o:1+recent:0", 1, 9, 4)]
    [InlineData("h2o:16+recent:5", 4, 20, 3, KvElementType.F16)]
    [InlineData("h2o:16", 8, 6, 5, KvElementType.Q8_0)]
    public void MatchesTheContiguousCacheTokenByTokenAndHoldsItsBudgetPlusAStep(string text, int blockSize, int prefill, int chunk,
        KvElementType type = KvElementType.F32)
    {
        var model = Model.Value;
        var policy = KvCachePolicy.Parse(text);
        var prompt = Prompt(model.Config.VocabSize);
        // The contiguous cache decoded token by token after the same prefill: the paged chunks must not change a bit.
        var contiguous = model.CreateCache(policy, contextLength: 128, elementType: type);
        var expected = Run(model, prompt, contiguous, prefill, 1);
        Assert.Equal(policy.EvictionBudget, contiguous.HeldPositions);

        using var pool = new KvBlockPool(model.Config, blockSize, 100, type);
        var paged = new PagedKvSequence(pool, 128, policy, model.Rope);
        int mostHeld = 0;
        var actual = Run(model, prompt, paged, prefill, chunk, () => mostHeld = Math.Max(mostHeld, paged.HeldBlocks));
        Assert.Equal(expected, actual);
        Assert.Equal(prompt.Length, paged.Length);

        // Slots for B held plus a step's new positions, rounded up to blocks.
        int most = (policy.EvictionBudget!.Value + Math.Max(prefill, chunk) + blockSize - 1) / blockSize;
        Assert.InRange(mostHeld, 1, most);
        Assert.Equal(pool.BlockCount - paged.HeldBlocks, pool.AvailableBlocks);
        paged.Release();
        Assert.Equal(pool.BlockCount, pool.AvailableBlocks);
        pool.Verify();
    }

    [Fact]
    public void DiffersFromTheFullCacheOnceItEvicts()
    {
        var model = Model.Value;
        var prompt = Prompt(model.Config.VocabSize, 40);
        using var pool = new KvBlockPool(model.Config, 4, 100);
        var h2o = Run(model, prompt, new PagedKvSequence(pool, 64, KvCachePolicy.Parse("h2o:8"), model.Rope), 4, 1);
        var full = Run(model, prompt, new PagedKvSequence(pool, 64), 4, 1);
        int vocab = model.Config.VocabSize;
        // Up to the budget nothing is evicted: the first 8 tokens' logits are the full cache's.
        Assert.Equal(full.GetRange(0, 8 * vocab), h2o.GetRange(0, 8 * vocab));
        Assert.NotEqual(full, h2o);
    }

    [Fact]
    public void RefusesPrefixBlocksAndForks()
    {
        var model = Model.Value;
        using var pool = new KvBlockPool(model.Config, 4, 40);
        var h2o = new PagedKvSequence(pool, 64, KvCachePolicy.Parse("h2o:8"), model.Rope);
        Assert.Contains("cannot share prefix-cache blocks", Assert.Throws<InvalidOperationException>(() => h2o.AdoptPrefix([])).Message);
        Run(model, Prompt(model.Config.VocabSize, 12), h2o, 12, 1);
        var prefixes = new PrefixCache(pool, "policies");
        var cursor = prefixes.Begin(null);
        Assert.Contains("cannot publish prefix-cache blocks",
            Assert.Throws<InvalidOperationException>(() => prefixes.Publish(h2o, [.. Enumerable.Range(1, 12)], ref cursor)).Message);
        Assert.Contains("cannot be forked", Assert.Throws<InvalidOperationException>(() => h2o.Fork()).Message);
        Assert.Contains("cannot truncate", Assert.Throws<InvalidOperationException>(() => h2o.Truncate(5)).Message);
        // Truncating to 0 starts over in the same blocks, and gives what a fresh sequence gives.
        h2o.Truncate(0);
        var again = Run(model, Prompt(model.Config.VocabSize, 20), h2o, 3, 2);
        var fresh = Run(model, Prompt(model.Config.VocabSize, 20), new PagedKvSequence(pool, 64, KvCachePolicy.Parse("h2o:8"), model.Rope), 3, 2);
        Assert.Equal(fresh, again);
        h2o.Release();
    }

    [Theory]
    [InlineData("snapkv:16+obs:4", 4, 7)]
    [InlineData("snapkv:10", 3, 1)]
    [InlineData("snapkv:24+obs:8", 16, 13)]
    public void SnapKvCompressesAMarkedPromptOnceWhateverItsChunks(string text, int blockSize, int chunk)
    {
        var model = Model.Value;
        var policy = KvCachePolicy.Parse(text);
        var prompt = Prompt(model.Config.VocabSize, 60);
        int vocab = model.Config.VocabSize, promptLength = 45;
        // The contiguous cache: the prompt in one forward (compressed at its end), then decoding token by token.
        var contiguous = model.CreateCache(policy, contextLength: 128);
        var expected = Run(model, prompt, contiguous, promptLength, 1);
        Assert.Equal(policy.EvictionBudget!.Value + prompt.Length - promptLength, contiguous.HeldPositions);

        // Marked, in chunks that cross the prompt's end: the same bits, paged or contiguous.
        using var pool = new KvBlockPool(model.Config, blockSize, 100);
        var paged = new PagedKvSequence(pool, 128, policy, model.Rope);
        paged.BeginPrompt(promptLength);
        Assert.Equal(expected, Run(model, prompt, paged, chunk, chunk));
        var chunked = model.CreateCache(policy, contextLength: 128);
        chunked.BeginPrompt(promptLength);
        Assert.Equal(expected, Run(model, prompt, chunked, chunk, chunk));
        Assert.Equal(contiguous.HeldPositions, chunked.HeldPositions);

        // Unmarked, each chunk is a prompt of its own (eval's chunked prefill): it compresses more often.
        if (chunk > 1)
        {
            var unmarked = model.CreateCache(policy, contextLength: 128);
            Assert.NotEqual(expected, Run(model, prompt, unmarked, chunk, chunk));
        }
        paged.Release();
        Assert.Equal(pool.BlockCount, pool.AvailableBlocks);
        pool.Verify();
    }

    [Fact]
    public void ASessionCompressesAPromptLongerThanAForwardPassOnce()
    {
        var model = Model.Value;
        var policy = KvCachePolicy.Parse("snapkv:16+obs:4");
        var prompt = Prompt(model.Config.VocabSize, 300);
        var whole = model.CreateCache(policy, contextLength: 512);
        model.CreateForwardPass(maxBatch: 300).Forward(prompt, whole, new float[model.Config.VocabSize], allLogits: false);

        // The session's forward pass takes 256 tokens at a time: the prompt runs in two, and is compressed once.
        using var session = model.CreateSession(new SessionOptions { ContextLength = 512, CachePolicy = policy });
        _ = session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 1, StopAtEndOfGeneration = false }).ToList();
        Assert.True(session.Cache.Length >= prompt.Length);
        for (int layer = 0; layer < model.Config.LayerCount; layer++)
            for (int head = 0; head < model.Config.KvHeadCount; head++)
                Assert.Equal(whole.PositionsHeld(layer, head), session.Cache.PositionsHeld(layer, head).Where(p => p < prompt.Length));
    }
}
