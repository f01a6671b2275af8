using KvSharp.Attention;
using KvSharp.Cache;
using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Models;
using KvSharp.Sampling;
using KvSharp.Tensors;
using KvSharp.Tests.Models;

namespace KvSharp.Tests.Paged;

/// <summary>
/// KIVI in the paged pool: a sequence's groups are quantized into its blocks, its exact rows kept beside it. Whatever
/// the steps (one prefill, token by token, chunks that split groups), the logits are those of a contiguous KIVI cache
/// fed in one prefill, bit for bit, over several blocks and group turns; the engine gives a KIVI request the same
/// tokens alone as in a batch, forked and preempted; and the combinations it cannot do right are refused by name.
/// </summary>
public class PagedKiviTests
{
    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 }));

    private static int[] Tokens(int count, int seed)
    {
        var rng = new Random(seed);
        var tokens = new int[count];
        tokens[0] = 1;
        for (int i = 1; i < count; i++) tokens[i] = rng.Next(3, 512);
        return tokens;
    }

    /// <summary>Logits of every position, the tokens fed in steps of <paramref name="steps"/> (cycled) through <paramref name="store"/>.</summary>
    private static float[] Logits(IKvStore store, int[] tokens, int[] steps) =>
        SteppedLogits.Run(Model.Value.CreateForwardPass(128), store, tokens, Model.Value.Config.VocabSize, steps);

    private static KvCache Contiguous(KvElementFormat format) =>
        new(Model.Value.Config, KvCacheMode.Contiguous, 512, format, KvCachePolicy.Full, Model.Value.Rope);

    [Theory]
    [InlineData(KvElementType.Kivi4, KvElementType.Kivi4, 32)]
    [InlineData(KvElementType.Kivi2, KvElementType.Kivi2, 64)]
    [InlineData(KvElementType.Kivi4, KvElementType.Q8_0, 32)]
    [InlineData(KvElementType.F16, KvElementType.Kivi4, 96)]
    public void PagedKiviEqualsContiguousKiviBitForBitWhateverTheSteps(KvElementType keys, KvElementType values, int blockSize)
    {
        var model = Model.Value;
        var format = KvElementFormat.Of(keys, values);
        var tokens = Tokens(230, (int)keys * 10 + (int)values);
        var prefill = Logits(Contiguous(format), tokens, [tokens.Length]);
        // A decode token by token reads each group as the prefill's query at its position did.
        Assert.Equal(prefill, Logits(Contiguous(format), tokens, [1]));
        using var pool = new KvBlockPool(model.Config, blockSize, 16, format, model.Rope);
        foreach (int[] steps in new int[][] { [tokens.Length], [1], [7, 40, 1, 1, 70, 3] })
        {
            var sequence = new PagedKvSequence(pool, 512);
            Assert.Equal(prefill, Logits(sequence, tokens, steps));
            sequence.Release();
        }
        // The quantized groups differ from exact rows: the test would see a type that kept everything exact.
        Assert.NotEqual(Logits(Contiguous(KvElementFormat.Of(KvElementType.F32)), tokens, [tokens.Length]), prefill);
        pool.Verify();
        Assert.Equal(0, pool.UsedBlocks);
    }

    /// <summary>The kernel asks where a tile turns from exact to quantized (IKvElement.ExactBefore): right only while a tile is one KIVI group.</summary>
    [Fact]
    public void TheKernelsTilesAreKivisGroups() => Assert.Equal(CausalAttention.TileSize, KvKivi.GroupRows);

    [Fact]
    public void ATruncatedAndRefedSequenceReadsAsOneComputedStraight()
    {
        var model = Model.Value;
        var format = KvElementFormat.Of(KvElementType.Kivi4);
        var tokens = Tokens(200, 3);
        var other = Tokens(200, 4);
        using var pool = new KvBlockPool(model.Config, 32, 16, format, model.Rope);
        var sequence = new PagedKvSequence(pool, 512);
        // Positions 150.. first computed from other tokens, then cut at 150 and refed (a rewind inside a group whose
        // exact rows are kept: 150 is within the newest 95 rows).
        Logits(sequence, [.. tokens[..150], .. other[150..]], [150, 1, 1, 48]);
        sequence.Truncate(150);
        var refed = Logits(sequence, tokens[150..], [50]);
        var straight = Logits(Contiguous(format), tokens, [tokens.Length]);
        int vocab = model.Config.VocabSize;
        Assert.Equal(straight[(150 * vocab)..], refed);
        sequence.Release();
        pool.Verify();
    }

    [Fact]
    public void AForkReadsAsItsParentAndNeitherDisturbsTheOther()
    {
        var model = Model.Value;
        var format = KvElementFormat.Of(KvElementType.Kivi4);
        var tokens = Tokens(220, 5);
        var branch = Tokens(220, 6);
        int vocab = model.Config.VocabSize;
        using var pool = new KvBlockPool(model.Config, 32, 24, format, model.Rope);
        var parent = new PagedKvSequence(pool, 512);
        Logits(parent, tokens[..100], [100]);
        var child = parent.Fork();
        // Each quantizes groups holding rows written after the fork, turn about, into blocks they shared.
        var childLogits = Logits(child, branch[100..200], [1, 1, 98]);
        var parentLogits = Logits(parent, tokens[100..], [120]);
        var childRest = Logits(child, branch[200..], [20]);
        Assert.Equal(Logits(Contiguous(format), tokens, [220])[(100 * vocab)..], parentLogits);
        var straight = Logits(Contiguous(format), [.. tokens[..100], .. branch[100..]], [220]);
        Assert.Equal(straight[(100 * vocab)..(200 * vocab)], childLogits);
        Assert.Equal(straight[(200 * vocab)..], childRest);
        parent.Release();
        child.Release();
        pool.Verify();
        Assert.Equal(0, pool.UsedBlocks);
    }

    [Fact]
    public void BadCombinationsAreRefusedByName()
    {
        var model = Model.Value;
        var kivi = KvElementFormat.Of(KvElementType.Kivi4, KvElementType.F16);
        Assert.Contains("block size 16 cannot hold Kivi4/F16", Assert.Throws<ArgumentException>(() => new KvBlockPool(model.Config, 16, 8, kivi)).Message);
        using var pool = new KvBlockPool(model.Config, 32, 8, kivi);
        Assert.Contains("cache policy 'window:64'", Assert.Throws<NotSupportedException>(() =>
            new PagedKvSequence(pool, 512, KvCachePolicy.Parse("window:64"))).Message);
        var sequence = new PagedKvSequence(pool, 512);
        Assert.Contains("cannot share prefix-cache blocks", Assert.Throws<InvalidOperationException>(() => sequence.AdoptPrefix([0])).Message);
        Assert.Contains("block size 16", Assert.Throws<ArgumentException>(() =>
            new LlmEngine(model, new EngineOptions { BlockCount = 8, BlockSize = 16, KeyElementType = KvElementType.Kivi4 })).Message);
        // Left unset, the block size is KIVI's group.
        using var engine = new LlmEngine(model, new EngineOptions { BlockCount = 8, KeyElementType = KvElementType.Kivi4 });
        Assert.Equal(32, engine.Pool.BlockSize);
        var handle = engine.Submit(new EngineRequest { PromptTokens = [1, 2, 3], CachePolicy = KvCachePolicy.Parse("sinks:4+window:32") });
        Assert.Equal(RequestStatus.Rejected, handle.Status);
        Assert.Contains("quantizes in groups along positions", handle.Error);
        Assert.Contains("cache policy 'window:64' overwrites or frees rows in place, which Kivi4 quantizes", Assert.Throws<ArgumentException>(() =>
            new LlmEngine(model, new EngineOptions { BlockCount = 8, KvElementType = KvElementType.Kivi4, CachePolicy = KvCachePolicy.Parse("window:64") })).Message);
        Assert.Contains("keeps no prefix cache", Assert.Throws<NotSupportedException>(() => engine.SavePrefix([1, 2, 3], null, new MemoryStream())).Message);
    }

    /// <summary>
    /// A KV budget holds KIVI's exact rows too: the pool gets what is left after the rows of every sequence that can run
    /// at once, so pool and exact rows together stay within the budget; a budget too small for both is a clear error.
    /// </summary>
    [Fact]
    public void TheKvBudgetSetsAsideTheExactRowsOfEveryRunningSequence()
    {
        var model = Model.Value;
        var format = KvElementFormat.Of(KvElementType.Kivi4, KvElementType.Kivi4);
        long exact = format.ExactBytesPerSequence(model.Config), perBlock = format.BytesPerToken(model.Config) * 32;
        const int running = 8;
        long budget = running * exact + 10 * perBlock + perBlock / 2;
        using (var engine = new LlmEngine(model, new EngineOptions { KvBudgetBytes = budget, MaxRunningSequences = running, KvElementType = KvElementType.Kivi4 }))
        {
            Assert.Equal(10, engine.Pool.BlockCount);
            Assert.True(engine.Pool.BlockCount * perBlock + running * exact <= budget);
        }
        // A non-KIVI type gives the whole budget to the pool.
        using (var f16 = new LlmEngine(model, new EngineOptions { KvBudgetBytes = budget, MaxRunningSequences = running, KvElementType = KvElementType.F16, BlockSize = 32 }))
            Assert.Equal(budget / (KvElementFormat.Of(KvElementType.F16).BytesPerToken(model.Config) * 32), f16.Pool.BlockCount);
        var e = Assert.Throws<ArgumentException>(() =>
            new LlmEngine(model, new EngineOptions { KvBudgetBytes = running * exact, MaxRunningSequences = running, KvElementType = KvElementType.Kivi4 }));
        Assert.Contains($"cannot hold the exact rows of {running} running Kivi4 sequences ({exact:N0} bytes each)", e.Message);
    }

    private static EngineRequest Request(int[] prompt, int samples = 1, ulong seed = 7) => new()
    {
        PromptTokens = prompt,
        SampleCount = samples,
        Options = new GenerationOptions
        {
            MaxTokens = 60,
            StopAtEndOfGeneration = false,
            Sampling = new SamplingOptions { Temperature = 0.8f, Seed = seed },
        },
    };

    private static List<int>[] Run(LlmEngine engine, params EngineRequest[] requests)
    {
        var handles = requests.Select(engine.Submit).ToArray();
        engine.RunUntilIdle();
        return [.. handles.SelectMany(h => Enumerable.Range(0, h.Request.SampleCount).Select(s => h.OutputTokens[s].ToList()))];
    }

    /// <summary>
    /// A KIVI request decodes the same tokens alone and beside others, with forks, and when a tight budget preempts and
    /// recomputes it; the prefix cache is not used (its blocks would read differently); every block comes back.
    /// </summary>
    [Fact]
    public void EngineGivesAKiviRequestTheSameTokensAloneBatchedForkedAndPreempted()
    {
        var model = Model.Value;
        var prompt = Tokens(120, 8);
        var others = new[] { Tokens(90, 9), Tokens(150, 10), prompt };
        EngineOptions Options(int blocks, int step) => new()
        {
            BlockSize = 32, BlockCount = blocks, MaxStepTokens = step, ContextLength = 256, KeyElementType = KvElementType.Kivi4,
            ValueElementType = KvElementType.Kivi2,
        };
        List<int> alone, second;
        using (var engine = new LlmEngine(model, Options(64, 256)))
        {
            alone = Run(engine, Request(prompt))[0];
            second = Run(engine, Request(prompt, seed: 8))[0];
        }
        using (var engine = new LlmEngine(model, Options(64, 37)))
        {
            var batched = Run(engine, [Request(others[0]), Request(others[1]), Request(prompt, samples: 2), Request(others[2])]);
            Assert.Equal(alone, batched[2]);
            Assert.Equal(second, batched[3]); // the fork: sample 1 samples with seed 7 + 1
            Assert.Equal(alone, batched[4]); // the same prompt again: computed, not adopted
            Assert.Equal(0, engine.PrefixCache.HitTokens);
            Assert.Equal(0, engine.PrefixCache.CachedBlocks);
            engine.Pool.Verify();
            Assert.Equal(0, engine.Pool.UsedBlocks);
        }
        using (var engine = new LlmEngine(model, Options(14, 64)))
        {
            var tight = Run(engine, [Request(others[1]), Request(prompt), Request(others[0])]);
            Assert.True(engine.Metrics.Preemptions > 0, "the budget was meant to preempt");
            Assert.Equal(alone, tight[1]);
            engine.Pool.Verify();
            Assert.Equal(0, engine.Pool.UsedBlocks);
        }
    }
}
