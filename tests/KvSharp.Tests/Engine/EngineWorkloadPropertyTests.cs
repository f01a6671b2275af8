using FsCheck;
using FsCheck.Fluent;
using KvSharp.Cache.Paged;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>
/// Random workloads — arrivals at random steps, random lengths, cancellations, parallel samples (forks), requests
/// that cannot fit, budgets so small that preemption is constant — always end with every request finished,
/// cancelled or rejected with a reason, and every block back in the pool with a zero reference count.
/// </summary>
public class EngineWorkloadPropertyTests
{
    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 }));

    [Fact]
    public void RandomWorkloadsDrainCompletelyAndLeakNoBlocks()
    {
        var seeds = Gen.Choose(0, int.MaxValue).ToArbitrary();
        Prop.ForAll(seeds, seed => RunWorkload(seed))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(25).WithQuietOnSuccess(true));
    }

    /// <summary>The same with KIVI keys and values (blocks of 32 or 64, no prefix cache): forks copy the blocks they quantize into.</summary>
    [Fact]
    public void RandomKiviWorkloadsDrainCompletelyAndLeakNoBlocks()
    {
        var seeds = Gen.Choose(0, int.MaxValue).ToArbitrary();
        Prop.ForAll(seeds, seed => RunWorkload(seed, kivi: true) && RunSequenceOperations(seed, kivi: true))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(8).WithQuietOnSuccess(true));
    }

    [Fact]
    public void RandomForkTruncateReleaseSequencesLeakNoBlocks()
    {
        var seeds = Gen.Choose(0, int.MaxValue).ToArbitrary();
        Prop.ForAll(seeds, seed => RunSequenceOperations(seed))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true));
    }

    private static bool RunWorkload(int seed, bool kivi = false)
    {
        var model = Model.Value;
        var rng = new Random(seed);
        int blockSize = kivi ? KvSharp.Tensors.KvKivi.GroupRows * rng.Next(1, 3) : rng.Next(1, 9);
        int blocks = rng.Next(48 / blockSize + 1, 160 / blockSize + 2);
        using var engine = new LlmEngine(model, new EngineOptions
        {
            ContextLength = 96,
            BlockSize = blockSize,
            BlockCount = blocks,
            MaxStepTokens = rng.Next(4, 40),
            MaxRunningSequences = rng.Next(1, 8),
            PrefixCaching = rng.Next(4) != 0,
            KeyElementType = kivi ? KvSharp.Cache.KvElementType.Kivi4 : null,
            ValueElementType = kivi ? KvSharp.Cache.KvElementType.Kivi2 : null,
        });
        var handles = new List<RequestHandle>();
        int requests = rng.Next(3, 12);
        var arrivals = Enumerable.Range(0, requests).Select(_ => rng.Next(0, 30)).Order().ToArray();
        int next = 0;
        for (int step = 0; step < 20_000; step++)
        {
            while (next < requests && arrivals[next] <= step)
            {
                int promptLength = rng.Next(1, 40);
                var prompt = new int[promptLength];
                prompt[0] = 1;
                // Shared openings make prefix hits likely.
                for (int i = 1; i < promptLength; i++) prompt[i] = i < 8 && rng.Next(2) == 0 ? 300 + i : rng.Next(3, 512);
                handles.Add(engine.Submit(new EngineRequest
                {
                    PromptTokens = prompt,
                    SampleCount = rng.Next(4) == 0 ? rng.Next(2, 4) : 1,
                    CacheSalt = rng.Next(3) == 0 ? "tenant" : null,
                    Options = new GenerationOptions
                    {
                        MaxTokens = rng.Next(1, 70), // some exceed the context: rejected
                        StopAtEndOfGeneration = rng.Next(2) == 0,
                        Sampling = new SamplingOptions { Temperature = rng.Next(2) == 0 ? 0 : 0.8f, Seed = (ulong)rng.Next() },
                    },
                }));
                next++;
            }
            if (handles.Count > 0 && rng.Next(25) == 0) handles[rng.Next(handles.Count)].Cancel();
            bool busy = engine.Step();
            // Forked samples count: never more running than the engine admits (KIVI sets exact rows aside for them).
            Assert.True(engine.RunningCount <= engine.Options.RunningLimit, $"seed {seed}: {engine.RunningCount} running, limit {engine.Options.RunningLimit}");
            if (!busy && next == requests) break;
        }

        foreach (var h in handles)
        {
            Assert.True(h.IsDone, $"seed {seed}: request {h.Id} is still {h.Status}");
            Assert.True(h.Completion.IsCompleted);
            if (h.Status == RequestStatus.Rejected) Assert.False(string.IsNullOrWhiteSpace(h.Error));
            if (h.Status == RequestStatus.Finished)
                for (int s = 0; s < h.Request.SampleCount; s++)
                {
                    Assert.InRange(h.OutputTokens[s].Count, 1, h.Request.Options.MaxTokens);
                    if (h.FinishReasons[s] == FinishReason.Length) Assert.Equal(h.Request.Options.MaxTokens, h.OutputTokens[s].Count);
                }
        }
        Assert.False(engine.HasWork);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        for (int b = 0; b < engine.Pool.BlockCount; b++) Assert.Equal(0, engine.Pool.RefCount(b));
        engine.Pool.Verify();
        return true;
    }

    private static bool RunSequenceOperations(int seed, bool kivi = false)
    {
        var model = Model.Value;
        var rng = new Random(seed);
        using var pool = kivi
            ? new KvBlockPool(model.Config, KvSharp.Tensors.KvKivi.GroupRows, 16, KvSharp.Cache.KvElementFormat.Of(KvSharp.Cache.KvElementType.Kivi4))
            : new KvBlockPool(model.Config, rng.Next(1, 6), 64);
        var forward = model.CreateForwardPass(32);
        var logits = new float[model.Config.VocabSize];
        var live = new List<PagedKvSequence> { new(pool, 128) };
        for (int op = 0; op < 40; op++)
        {
            var s = live[rng.Next(live.Count)];
            switch (rng.Next(5))
            {
                case 0 or 1:
                    var tokens = Enumerable.Range(0, rng.Next(1, 6)).Select(_ => rng.Next(3, 512)).ToArray();
                    try { forward.Forward(tokens, s, logits, false); }
                    catch (OutOfKvBlocksException) { } // the pool is full: nothing written, nothing leaked
                    break;
                case 2 when live.Count < 6:
                    live.Add(s.Fork());
                    break;
                case 3:
                    s.Truncate(rng.Next(0, s.Length + 1));
                    break;
                case 4 when live.Count > 1:
                    s.Release();
                    live.Remove(s);
                    break;
            }
            pool.Verify();
        }
        foreach (var s in live) s.Release();
        Assert.Equal(0, pool.UsedBlocks);
        pool.Verify();
        return true;
    }
}
