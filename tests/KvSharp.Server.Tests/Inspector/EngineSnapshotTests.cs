using KvSharp.Cache.Paged;
using KvSharp.Engine;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// <see cref="LlmEngine.Inspect"/> on an engine driven step by step: after every step its numbers are the engine's
/// metrics and pool counts at that step, its map agrees with the refcounts, and its prefix tree with the cache.
/// </summary>
public class EngineSnapshotTests
{
    private const string Story = "Once upon a time there was a little girl named Lily. She loved to play in the park";

    [Fact]
    public void SnapshotNumbersEqualTheEnginesMetricsAtEveryStep()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        // Too few blocks for every sequence to finish together: the newest are preempted and recomputed; prompts
        // longer than a step's 16 tokens are computed in chunks (prefill across steps).
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockSize = 4, BlockCount = 30, MaxRunningSequences = 4, MaxStepTokens = 16 });
        var prompts = new[] { Story, "The dog ran to the big red ball and", "Tom and Sam went to the shop to buy" };
        var handles = prompts.Select(p => engine.Submit(Request(model, p, 40))).ToList();
        handles.Add(engine.Submit(Request(model, Story, 20, samples: 2)));

        var states = new HashSet<string>();
        var queued = engine.Inspect();
        AssertMatchesEngine(engine, queued);
        Assert.All(queued.Sequences, s => Assert.Equal("queued", s.State));
        bool sawShared = false;
        while (engine.Step())
        {
            var snapshot = engine.Inspect();
            AssertMatchesEngine(engine, snapshot);
            foreach (var s in snapshot.Sequences) states.Add(s.State);
            sawShared |= snapshot.Blocks.Shared > 0;
        }
        Assert.All(handles, h => Assert.Equal(RequestStatus.Finished, h.Status));
        Assert.True(engine.Metrics.Preemptions > 0, "the pool was meant to be short enough to preempt");
        Assert.Superset(new HashSet<string> { "prefill", "decoding", "preempted" }, states);
        Assert.True(sawShared, "the parallel samples and the prefix hit share blocks");

        var idle = engine.Inspect();
        AssertMatchesEngine(engine, idle);
        Assert.Empty(idle.Sequences);
        Assert.Equal(0, idle.Blocks.InUse + idle.Blocks.Shared);
        Assert.All(idle.Blocks.Map, c => Assert.Contains(c, ".c"));
        Assert.Empty(idle.Tiers);
    }

    [Fact]
    public void KiviExactRowsAreCountedPerRunningSequence()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 16, MaxRunningSequences = 2, KvElementType = KvSharp.Cache.KvElementType.Kivi4 });
        long perSequence = engine.Pool.Format.ExactBytesPerSequence(model.Config);
        Assert.True(perSequence > 0);
        Assert.Equal(2 * perSequence, engine.Inspect().Blocks.ExactRowsReservedBytes);
        var handles = new[] { Story, "The dog ran to the big red ball and", "Tom and Sam went to the shop to buy" }
            .Select(p => engine.Submit(Request(model, p, 8))).ToList();
        Assert.Equal(0, engine.Inspect().Blocks.ExactRowsBytes);
        long most = 0;
        while (engine.Step())
        {
            var snapshot = engine.Inspect();
            AssertMatchesEngine(engine, snapshot);
            most = Math.Max(most, snapshot.Blocks.ExactRowsBytes);
        }
        Assert.Equal(2 * perSequence, most);
        Assert.All(handles, h => Assert.Equal(RequestStatus.Finished, h.Status));
        Assert.Equal(0, engine.Inspect().Blocks.ExactRowsBytes);
    }

    [Fact]
    public void PrefixTreeBranchesWhereThePromptsDifferAndCountsHits()
    {
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockSize = 4, BlockCount = 64 });
        engine.Submit(Request(model, Story + " with her friends.", 1));
        engine.RunUntilIdle();
        Assert.Equal(0, engine.Inspect().PrefixTree.Sum(n => n.Hits));

        // Shares the first blocks, then differs: the chain branches; the shared run is hit once.
        var branch = engine.Submit(Request(model, Story + " and the big dog ran away.", 1));
        engine.RunUntilIdle();
        var tree = engine.Inspect().PrefixTree;
        var root = Assert.Single(tree, n => n.Parent == -1);
        Assert.Equal(2, tree.Count(n => n.Parent == root.Id));
        Assert.Equal(1, root.Hits);
        // The shared run's blocks, then the leading rows of the first block after it that the prompts still share.
        int rows = branch.CachedPromptTokens - root.Blocks.Count * engine.Pool.BlockSize;
        Assert.InRange(rows, 0, engine.Pool.BlockSize - 1);
        // The branch whose leading rows were taken counts that hit; the other is the new prompt's own.
        Assert.Equal(rows > 0 ? 1 : 0, tree.Where(n => n.Parent == root.Id).Sum(n => n.Hits));

        // Every published block is in exactly one node, parents come before children, chains are numbered.
        var published = Enumerable.Range(0, engine.Pool.BlockCount).Where(b => engine.PrefixCache.Describe(b).Published).ToHashSet();
        Assert.Equal(published.Order(), tree.SelectMany(n => n.Blocks).Order());
        Assert.All(tree, n => Assert.True(n.Parent < n.Id));
        Assert.All(tree, n => Assert.Equal(0, n.Chain));
        // A node's run is a chain: each block's parent in the cache is the block before it.
        foreach (var n in tree)
            for (int i = 1; i < n.Blocks.Count; i++)
                Assert.Equal(n.Blocks[i - 1], engine.PrefixCache.Describe(n.Blocks[i]).Parent);
    }

    internal static EngineRequest Request(LlmModel model, string prompt, int maxTokens, int samples = 1) => new()
    {
        PromptTokens = model.Tokenizer.Encode(prompt, true, false),
        Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false },
        SampleCount = samples,
    };

    /// <summary>The snapshot says what the engine, its metrics and its pool say now.</summary>
    internal static void AssertMatchesEngine(LlmEngine engine, EngineSnapshotDetail snapshot)
    {
        var m = engine.Metrics;
        var c = snapshot.Counters;
        Assert.Equal(m.Steps, snapshot.Step);
        Assert.Equal(m.Steps, c.Steps);
        Assert.Equal(m.GeneratedTokens, c.GeneratedTokens);
        Assert.Equal(m.ComputedTokens, c.ComputedTokens);
        Assert.Equal(m.PrefixQueriedTokens, c.PrefixQueriedTokens);
        Assert.Equal(m.PrefixHitTokens, c.PrefixHitTokens);
        Assert.Equal(m.PrefixQueriedTokens == 0 ? 0 : (double)m.PrefixHitTokens / m.PrefixQueriedTokens, c.PrefixHitRate);
        Assert.Equal(m.Preemptions, c.Preemptions);
        Assert.Equal(m.TokensPerSecond, c.TokensPerSecond);
        Assert.Equal(engine.RunningCount, c.Running);
        Assert.Equal(engine.WaitingCount, c.Waiting);
        Assert.Equal(engine.Changes, snapshot.Changes);

        var pool = engine.Pool;
        var b = snapshot.Blocks;
        Assert.Equal(pool.BlockCount, b.Count);
        Assert.Equal(pool.UsedBlocks, b.InUse + b.Shared);
        Assert.Equal(pool.CachedBlocks, b.Cached);
        Assert.Equal(pool.BlockCount, b.Free + b.InUse + b.Shared + b.Cached);
        Assert.Equal(pool.UsedBlocks * pool.BytesPerBlock, b.UsedBytes);
        Assert.Equal(pool.TotalBytes, b.TotalBytes);
        // KIVI's exact rows: one set per sequence holding a cache (only running ones do); none for other types.
        Assert.Equal(pool.Format.ExactBytesPerSequence(pool.Config) * engine.RunningCount, b.ExactRowsBytes);
        Assert.Equal(engine.Options.ExactRowsBytes(pool.Config), b.ExactRowsReservedBytes);
        for (int block = 0; block < pool.BlockCount; block++)
        {
            char expected = pool.RefCount(block) switch
            {
                > 1 => EngineSnapshotBlocks.SharedCell,
                1 => EngineSnapshotBlocks.InUseCell,
                _ => engine.PrefixCache.Describe(block).Cached ? EngineSnapshotBlocks.CachedCell : EngineSnapshotBlocks.FreeCell,
            };
            Assert.Equal(expected, b.Map[block]);
        }

        // Each held block is in as many block tables as it has holders.
        var holders = snapshot.Sequences.SelectMany(s => s.BlockTable).CountBy(x => x).ToDictionary();
        for (int block = 0; block < pool.BlockCount; block++)
            Assert.Equal(pool.RefCount(block), holders.GetValueOrDefault(block));
        Assert.Equal(engine.RunningCount, snapshot.Sequences.Count(s => s.State is "prefill" or "decoding"));
        Assert.Equal(engine.WaitingCount, snapshot.Sequences.Count(s => s.State is "queued" or "preempted"));
        Assert.All(snapshot.Sequences, s => Assert.Equal((s.KvLength + pool.BlockSize - 1) / pool.BlockSize, s.BlockTable.Count));
    }
}
