using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Models;
using KvSharp.Sampling;
using KvSharp.Tests.Models;

namespace KvSharp.Tests.Paged;

/// <summary>
/// The engine's pool with a model's local layers kept apart (Gemma 2/3, Cohere2; the test variants' window is 24 positions):
/// every request gives the tokens and log-probabilities of a pool that keeps every layer's every position, through
/// prompts and replies longer than the window, batching, parallel samples and prefix-cache hits, while the local
/// layers hold only the blocks their window reads.
/// </summary>
public sealed class LocalLayerGroupsTests
{
    private const int Context = 1024;

    private static LlmModel Load(ArchitectureVariants.Variant variant) =>
        LlmModel.Load(ArchitectureVariants.Path(variant), new ModelLoadOptions { Threads = 2 });

    private static LlmEngine Engine(LlmModel model, bool full, int blocks = 512, KvElementType type = KvElementType.F32, int step = 64) =>
        new(model, new EngineOptions { ContextLength = Context, BlockCount = blocks, FullLocalLayers = full, KvElementType = type, MaxStepTokens = step });

    /// <summary>Deterministic token ids of the vocabulary (BOS first), different per <paramref name="seed"/>.</summary>
    private static int[] Tokens(LlmModel model, int count, int seed = 0) =>
        [model.Tokenizer.BosId, .. Enumerable.Range(1, count - 1).Select(i => 3 + (i * 37 + seed * 101) % (model.Config.VocabSize - 3))];

    private static EngineRequest Request(int[] prompt, int maxTokens, int samples = 1, SamplingOptions? sampling = null) => new()
    {
        PromptTokens = prompt,
        Options = new GenerationOptions
        {
            MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = sampling ?? SamplingOptions.Greedy, TopLogprobs = 1,
        },
        SampleCount = samples,
    };

    /// <summary>Every token a finished request generated with its log-probability, per sample.</summary>
    private static List<(int Sample, int Token, float Logprob)> Generated(RequestHandle handle)
    {
        Assert.Equal(RequestStatus.Finished, handle.Status);
        var tokens = new List<(int, int, float)>();
        while (handle.Stream.TryRead(out var t))
            if (t.TokenId >= 0) tokens.Add((t.Sample, t.TokenId, t.Logprobs!.Sampled.Logprob));
        return tokens;
    }

    private static RequestHandle[] RunAll(LlmEngine engine, IEnumerable<EngineRequest> requests)
    {
        var handles = requests.Select(engine.Submit).ToArray();
        engine.RunUntilIdle();
        engine.Pool.Verify();
        return handles;
    }

    [Fact]
    public void GroupsHoldTheGlobalLayersApartFromEqualGroupsOfLocalOnes()
    {
        using var gemma3 = Load(ArchitectureVariants.Gemma3F32);
        var groups = KvLayerGroups.For(gemma3.Config, splitLocalLayers: true);
        // Six layers, the last global: one layer per block, five local groups.
        Assert.Equal((6, 1, 0, 24), (groups.Count, groups.LayersPerBlock, groups.PaddingSlots, groups.LocalWindow));
        Assert.Equal(0, groups.GroupOf(5));
        Assert.Equal([1, 2, 3, 4, 5], Enumerable.Range(0, 5).Select(groups.GroupOf));
        Assert.False(KvLayerGroups.For(gemma3.Config, splitLocalLayers: false).SplitsLocalLayers);

        // Thirteen layers (global 5 and 11): blocks of two layers, eleven local ones in six groups, one slot unused.
        var odd = KvLayerGroups.For(gemma3.Config with { LayerCount = 13 }, splitLocalLayers: true);
        Assert.Equal((7, 2, 1), (odd.Count, odd.LayersPerBlock, odd.PaddingSlots));
        Assert.Equal((0, 0), (odd.GroupOf(5), odd.SlotOf(5)));
        Assert.Equal((0, 1), (odd.GroupOf(11), odd.SlotOf(11)));
        Assert.Equal((6, 0), (odd.GroupOf(12), odd.SlotOf(12)));

        using var gemma2 = Load(ArchitectureVariants.Gemma2Q8);
        var alternating = KvLayerGroups.For(gemma2.Config, splitLocalLayers: true);
        Assert.Equal((2, 13, 0), (alternating.Count, alternating.LayersPerBlock, alternating.PaddingSlots));

        // A model without local layers keeps every layer in one block.
        using var stories = LlmModel.Load(TestPaths.Model("stories260K.gguf"));
        Assert.False(KvLayerGroups.For(stories.Config, splitLocalLayers: true).SplitsLocalLayers);
    }

    [Theory]
    [InlineData("gemma3", KvElementType.F32)]
    [InlineData("gemma3", KvElementType.Q8_0)]
    [InlineData("gemma3", KvElementType.F16)]
    [InlineData("gemma2", KvElementType.F32)]
    [InlineData("cohere2", KvElementType.F32)]
    public void BatchedRequestsPastTheWindowGiveTheBitsOfAPoolKeepingEveryPosition(string arch, KvElementType type)
    {
        using var model = Load(arch switch { "gemma3" => ArchitectureVariants.Gemma3F32, "gemma2" => ArchitectureVariants.Gemma2Q8, _ => ArchitectureVariants.Cohere2F32 });
        // Prompts shorter and longer than the window and than a step, replies well past the window, a late joiner.
        var requests = new[] { Request(Tokens(model, 9, 1), 70), Request(Tokens(model, 150, 2), 40), Request(Tokens(model, 40, 3), 90) };
        using var whole = Engine(model, full: true, type: type);
        using var apart = Engine(model, full: false, type: type);
        Assert.True(apart.Pool.LayerGroups.SplitsLocalLayers);
        Assert.False(whole.Pool.LayerGroups.SplitsLocalLayers);
        var expected = RunAll(whole, requests).Select(Generated).ToArray();
        var actual = RunAll(apart, requests).Select(Generated).ToArray();
        for (int i = 0; i < requests.Length; i++) Assert.Equal(expected[i], actual[i]);
        Assert.Equal(0, apart.Pool.UsedBlocks);
    }

    [Fact]
    public void ParallelSamplesShareTheirBlocksAndGiveTheWholePoolsSamples()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        var request = Request(Tokens(model, 30), 60, samples: 3, sampling: new SamplingOptions { Temperature = 0.9f, Seed = 7 });
        using var whole = Engine(model, full: true);
        using var apart = Engine(model, full: false);
        Assert.Equal(Generated(RunAll(whole, [request])[0]), Generated(RunAll(apart, [request])[0]));
    }

    [Fact]
    public void ALongSequenceHoldsEveryPositionOnlyInItsGlobalLayers()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        using var whole = Engine(model, full: true);
        using var apart = Engine(model, full: false);
        var request = Request(Tokens(model, 200), 400);
        var hw = whole.Submit(request);
        var ha = apart.Submit(request);
        // Run both to 600 positions, then compare what they hold.
        while (hw.OutputTokens[0].Count < 399) whole.Step();
        while (ha.OutputTokens[0].Count < 399) apart.Step();
        long wholeBytes = whole.Pool.UsedBlocks * whole.Pool.BytesPerBlock, apartBytes = apart.Pool.UsedBlocks * apart.Pool.BytesPerBlock;
        long perLayerBlock = whole.Pool.BytesPerBlock / 6;
        Assert.Equal(whole.Pool.BytesPerBlock, 6 * perLayerBlock);
        Assert.Equal(apart.Pool.BytesPerBlock, perLayerBlock);
        // Whole: 600 positions in 38 blocks of six layers. Apart: 38 global blocks, and per local layer the blocks from
        // the tile its window starts in to the last position (3 or 4 blocks of 16).
        Assert.Equal(38 * 6 * perLayerBlock, wholeBytes);
        Assert.InRange(apartBytes, (38 + 5 * 2) * perLayerBlock, (38 + 5 * 4) * perLayerBlock);
        whole.RunUntilIdle();
        apart.RunUntilIdle();
        Assert.Equal(Generated(hw), Generated(ha));
    }

    [Fact]
    public void APrefixHitReusesEveryComputedPositionWhoseWindowIsHeldAndChangesNoBit()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        using var whole = Engine(model, full: true);
        using var apart = Engine(model, full: false);
        var first = Request(Tokens(model, 100, 5), 30);
        var turn1 = RunAll(apart, [first])[0];
        var reply = turn1.OutputTokens[0];
        Assert.Equal(0, turn1.CachedPromptTokens);

        // The same prompt again: every position but the last prompt token's (computed for its logits), its last block's
        // rows too (the leading rows of the block the first request's prompt ended in), every local window still cached.
        var again = RunAll(apart, [first])[0];
        Assert.Equal(99, again.CachedPromptTokens);

        // The next turn: the first turn's prompt and reply, and more. Every position the first turn computed is cached
        // (the last sampled token never was); its output is the whole pool's, which computes nothing twice either.
        var next = Request([.. first.PromptTokens, .. reply, .. Tokens(model, 20, 6)[1..]], 40);
        var turn2 = RunAll(apart, [next])[0];
        Assert.Equal(100 + 30 - 1, turn2.CachedPromptTokens);
        RunAll(whole, [first]);
        var expected = RunAll(whole, [next])[0];
        Assert.Equal(Generated(expected), Generated(turn2));
        Assert.Equal(Generated(RunAll(whole, [first])[0]), Generated(again));
    }

    [Fact]
    public void EvictedLocalBlocksShortenAHitToWhereItsWindowIsHeld()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        // 48 blocks of one layer: a 100-token request needs 7 global blocks and up to 5 x 4 local ones.
        using var apart = Engine(model, full: false, blocks: 48, step: 32);
        using var whole = Engine(model, full: true);
        var first = Request(Tokens(model, 100, 8), 4);
        RunAll(apart, [first]);
        // Another request takes blocks: the oldest cached ones go first, the local blocks let go behind the window
        // while the first one ran, then the rest.
        var other = Request(Tokens(model, 120, 9), 4);
        RunAll(apart, [other]);
        var again = RunAll(apart, [first])[0];
        Assert.True(again.CachedPromptTokens < 96, $"{again.CachedPromptTokens} positions adopted");
        Assert.Equal(Generated(RunAll(whole, [first])[0]), Generated(again));
        Assert.True(apart.PrefixCache.EvictedBlocks > 0);
    }

    [Fact]
    public void ATruncationIntoFreedLocalBlocksIsRefusedByName()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        using var pool = new KvBlockPool(model.Config, 16, 64, KvElementFormat.Of(KvElementType.F32), model.Rope,
            KvLayerGroups.For(model.Config, splitLocalLayers: true));
        var seq = new PagedKvSequence(pool, Context);
        seq.Reserve(100);
        seq.Commit(100);
        seq.Reserve(101); // the local tables let go of the blocks before the window of position 100 (from 64)
        Assert.Equal(PagedWindow.Freed, seq.GroupTable(1)[0]);
        Assert.Equal(PagedWindow.Freed, seq.GroupTable(1)[3]);
        Assert.NotEqual(PagedWindow.Freed, seq.GroupTable(1)[4]);
        Assert.NotEqual(PagedWindow.Freed, seq.BlockTable[0]);
        seq.Truncate(90); // its window starts in block 4
        var e = Assert.Throws<InvalidOperationException>(() => seq.Truncate(40));
        Assert.Contains("local layers no longer hold the window of 24 positions", e.Message);
        seq.Release();
        Assert.Equal(0, pool.UsedBlocks);
        pool.Verify();
    }

    [Fact]
    public void TiersAndKiviKeepLocalLayersWholeAndPrefixFilesAreRefusedByName()
    {
        using var model = Load(ArchitectureVariants.Gemma3F32);
        using var apart = Engine(model, full: false);
        var e = Assert.Throws<NotSupportedException>(() => apart.SavePrefix(Tokens(model, 40), null, new MemoryStream()));
        Assert.Contains("local layers apart", e.Message);
        Assert.Contains("--swa-full", e.Message);
        string dir = Directory.CreateTempSubdirectory("kvsharp-groups-").FullName;
        try
        {
            using var tiers = new KvSharp.Cache.Tiers.KvTiers([new KvSharp.Cache.Tiers.DiskKvTier(dir, 1 << 20)], ownsTiers: true);
            Assert.False(new EngineOptions { KvTiers = tiers }.LayerGroups(model.Config).SplitsLocalLayers);
            // A prefix cache with tiers over a pool that keeps them apart is refused by name.
            using var pool = new KvBlockPool(model.Config, 16, 8, KvElementFormat.Of(KvElementType.F32), model.Rope, KvLayerGroups.For(model.Config, true));
            Assert.Contains("--swa-full", Assert.Throws<NotSupportedException>(() => new PrefixCache(pool, "m", tiers: tiers)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
        Assert.False(new EngineOptions { KvElementType = KvElementType.Kivi4 }.LayerGroups(model.Config).SplitsLocalLayers);
        Assert.True(new EngineOptions().LayerGroups(model.Config).SplitsLocalLayers);
    }
}
