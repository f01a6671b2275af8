using KvSharp.Cache.Paged;
using KvSharp.Cache.Policies;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Policies;

/// <summary>
/// Requests with different cache policies batched in one engine produce what each produces alone; random workloads
/// of them (preemption, cancellation, prefix caching on) leave every block free; what cannot be right is refused.
/// </summary>
public class EnginePolicyTests
{
    private static readonly Lazy<LlmModel> Model = new(() =>
        LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 }));

    private static readonly string[] Policies = ["full", "window:24", "sinks:4+window:20", "window:1", "sinks:1+window:7", "h2o:16", "h2o:9+recent:2", "snapkv:12+obs:3"];

    private static EngineRequest Request(int seed, string policy, int maxTokens = 60)
    {
        var rng = new Random(seed);
        return new EngineRequest
        {
            PromptTokens = [1, .. Enumerable.Range(0, rng.Next(5, 40)).Select(_ => rng.Next(3, 512))],
            CachePolicy = KvCachePolicy.Parse(policy),
            Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = new SamplingOptions { Temperature = 0 } },
        };
    }

    [Fact]
    public void BatchedPoliciesGiveWhatEachGivesAlone()
    {
        var model = Model.Value;
        var requests = Policies.Select((p, i) => Request(i, p)).ToArray();
        var alone = requests.Select(r => Alone(model, r)).ToArray();

        using var shared = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 200, BlockSize = 4, MaxStepTokens = 24 });
        var handles = requests.Select(shared.Submit).ToArray();
        shared.RunUntilIdle();
        for (int i = 0; i < requests.Length; i++)
            Assert.True(alone[i].SequenceEqual(handles[i].OutputTokens[0]), $"{Policies[i]}: batched output differs from alone");
        Assert.Equal(0, shared.Pool.UsedBlocks);
        // The windows and H2O changed what was generated: the policies are really applied.
        Assert.NotEqual(alone[0], alone[3]);
        var fullOfH2o = requests[6] with { CachePolicy = KvCachePolicy.Full };
        using var full = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 64, BlockSize = 4 });
        var fullHandle = full.Submit(fullOfH2o);
        full.RunUntilIdle();
        Assert.NotEqual(fullHandle.OutputTokens[0], alone[6]);
    }

    [Fact]
    public void RandomWorkloadsWithPoliciesLeaveEveryBlockFree()
    {
        var model = Model.Value;
        for (int seed = 0; seed < 12; seed++)
        {
            var rng = new Random(seed);
            using var engine = new LlmEngine(model, new EngineOptions
            {
                ContextLength = 96,
                BlockSize = rng.Next(1, 9),
                BlockCount = rng.Next(20, 60),
                MaxStepTokens = rng.Next(4, 40),
                MaxRunningSequences = rng.Next(1, 6),
                PrefixCaching = rng.Next(2) == 0,
            });
            var handles = new List<RequestHandle>();
            for (int r = 0; r < 8; r++)
            {
                handles.Add(engine.Submit(Request(rng.Next(), Policies[rng.Next(Policies.Length)], rng.Next(1, 50))));
                for (int s = rng.Next(0, 6); s > 0; s--) engine.Step();
                if (rng.Next(6) == 0) handles[rng.Next(handles.Count)].Cancel();
            }
            engine.RunUntilIdle();
            Assert.All(handles, h => Assert.True(h.IsDone, $"seed {seed}: request {h.Id} is {h.Status} ({h.Error})"));
            Assert.Equal(0, engine.Pool.UsedBlocks);
            for (int b = 0; b < engine.Pool.BlockCount; b++) Assert.Equal(0, engine.Pool.RefCount(b));
            engine.Pool.Verify();
        }
    }

    [Fact]
    public void RefusesWhatCannotBeRight()
    {
        using var engine = new LlmEngine(Model.Value, new EngineOptions { ContextLength = 64, BlockCount = 64, BlockSize = 4 });
        var tooLarge = engine.Submit(Request(1, "window:65"));
        var forkedSinks = engine.Submit(Request(2, "sinks:4+window:8") with { SampleCount = 2 });
        Assert.Equal(RequestStatus.Rejected, tooLarge.Status);
        Assert.Contains("more than the context length of 64", tooLarge.Error);
        Assert.Equal(RequestStatus.Rejected, forkedSinks.Status);
        Assert.Contains("one sample per request", forkedSinks.Error);
        foreach (string scored in new[] { "h2o:16", "snapkv:16+obs:4" })
        {
            var forked = engine.Submit(Request(5, scored) with { SampleCount = 2 });
            Assert.Equal(RequestStatus.Rejected, forked.Status);
            Assert.Contains("one sample per request", forked.Error);
        }
        var forkedWindow = engine.Submit(Request(3, "window:8", 10) with { SampleCount = 2 });
        engine.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, forkedWindow.Status);
    }

    /// <summary>The tokens a request generates in an engine of its own.</summary>
    private static int[] Alone(LlmModel model, EngineRequest request)
    {
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 64, BlockSize = 4 });
        var h = engine.Submit(request);
        engine.RunUntilIdle();
        return h.OutputTokens[0].ToArray();
    }

    /// <summary>Runs the requests together in a pool too small for them all, and checks each gives what it gives alone.</summary>
    private static void AssertPreemptedEqualAlone(EngineRequest[] requests, EngineOptions tightOptions)
    {
        var model = Model.Value;
        var alone = requests.Select(r => Alone(model, r)).ToArray();

        using var tight = new LlmEngine(model, tightOptions);
        var handles = requests.Select(tight.Submit).ToArray();
        tight.RunUntilIdle();
        Assert.True(tight.Metrics.Preemptions > 0);
        for (int i = 0; i < requests.Length; i++)
            Assert.True(alone[i].SequenceEqual(handles[i].OutputTokens[0]), $"request {i} ({requests[i].CachePolicy}): batched output differs from alone");
        Assert.Equal(0, tight.Pool.UsedBlocks);
        tight.Pool.Verify();
    }

    [Fact]
    public void PreemptedH2oRequestsRecomputeToWhatEachGivesAlone() =>
        // 14 blocks of 4 for six sequences of up to B + a 16-token step each: they preempt one another, and each
        // recomputes its tokens in other chunks than before.
        AssertPreemptedEqualAlone(
            [.. Enumerable.Range(0, 6).Select(i => Request(20 + i, i % 2 == 0 ? "h2o:12" : "h2o:20+recent:4", 40))],
            new EngineOptions { ContextLength = 128, BlockCount = 14, BlockSize = 4, MaxStepTokens = 16 });

    [Fact]
    public void SnapKvOutputsDependNeitherOnTheBatchNorOnPreemption() =>
        // Prompts longer than the budget and than a step: compressed once at their end, however they are chunked.
        AssertPreemptedEqualAlone(
            [.. Enumerable.Range(0, 4).Select(i =>
            {
                var rng = new Random(40 + i);
                return Request(40 + i, i % 2 == 0 ? "snapkv:12+obs:3" : "snapkv:20", 20) with
                {
                    PromptTokens = [1, .. Enumerable.Range(0, rng.Next(30, 60)).Select(_ => rng.Next(3, 512))],
                };
            })],
            new EngineOptions { ContextLength = 128, BlockCount = 30, BlockSize = 4, MaxStepTokens = 7 });

    [Fact]
    public void H2oRequestsNeverTouchThePrefixCache()
    {
        var model = Model.Value;
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 128, BlockCount = 64, BlockSize = 4 });
        var full = Request(8, "full", 4);
        engine.Submit(full);
        engine.RunUntilIdle();
        int cached = engine.Pool.CachedBlocks;
        Assert.True(cached > 0);
        // The same prompt under H2O: nothing adopted, nothing published, the full request's blocks still there for the next.
        for (int i = 0; i < 2; i++)
        {
            var h = engine.Submit(full with { CachePolicy = KvCachePolicy.Parse("h2o:8") });
            engine.RunUntilIdle();
            Assert.Equal(RequestStatus.Finished, h.Status);
            Assert.Equal(0, h.CachedPromptTokens);
            Assert.Equal(cached, engine.Pool.CachedBlocks);
        }
        var again = engine.Submit(full);
        engine.RunUntilIdle();
        Assert.True(again.CachedPromptTokens > 0);
        Assert.Equal(0, engine.Pool.UsedBlocks);
    }

    [Fact]
    public void WindowedRequestLongerThanThePoolIsAdmittedAndFullIsNot()
    {
        var model = Model.Value;
        // 12 blocks of 4 hold 48 positions; the request runs to about 80.
        var options = new EngineOptions { ContextLength = 128, BlockCount = 12, BlockSize = 4, MaxStepTokens = 8 };
        var windowed = Request(5, "window:16", 60);
        Assert.True(windowed.PromptTokens.Count + 60 > 48);
        using var small = new LlmEngine(model, options);
        var full = small.Submit(windowed with { CachePolicy = KvCachePolicy.Full });
        Assert.Equal(RequestStatus.Rejected, full.Status);
        Assert.Contains("KV blocks", full.Error);
        var h = small.Submit(windowed);
        small.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, h.Status);
        Assert.Equal(60, h.OutputTokens[0].Count);
        Assert.Equal(0, small.Pool.UsedBlocks);

        using var large = new LlmEngine(model, options with { BlockCount = 64 });
        var reference = large.Submit(windowed);
        large.RunUntilIdle();
        Assert.Equal(reference.OutputTokens[0], h.OutputTokens[0]);
    }

    [Fact]
    public void SmallestAdmittingPoolAlwaysFinishesAWindowedRequest()
    {
        // The admission bound is what a lone sequence can hold at most: a pool one block smaller than the smallest
        // that admits it would have to preempt it, and it would restart forever. Capped steps catch that.
        var model = Model.Value;
        var rng = new Random(7);
        for (int trial = 0; trial < 10; trial++)
        {
            var options = new EngineOptions { ContextLength = 96, BlockSize = rng.Next(1, 9), MaxStepTokens = rng.Next(1, 20) };
            string policy = rng.Next(4) switch
            {
                0 => $"window:{rng.Next(1, 30)}",
                1 => $"sinks:{rng.Next(1, 6)}+window:{rng.Next(1, 25)}",
                2 => $"h2o:{rng.Next(2, 30)}",
                _ => $"snapkv:{rng.Next(2, 30)}",
            };
            var request = Request(rng.Next(), policy, rng.Next(20, 50));
            int blocks = 1;
            while (true)
            {
                using var probe = new LlmEngine(model, options with { BlockCount = blocks });
                if (probe.Submit(request).Status != RequestStatus.Rejected) break;
                blocks++;
            }
            using var engine = new LlmEngine(model, options with { BlockCount = blocks });
            var h = engine.Submit(request);
            for (int steps = 0; steps < 2000 && engine.Step(); steps++) { }
            Assert.True(h.Status == RequestStatus.Finished, $"{policy}, {options.BlockSize}-position blocks, {options.MaxStepTokens}-token steps, {blocks} blocks: {h.Status} ({h.Error})");
            Assert.Equal(0, engine.Pool.UsedBlocks);
        }
    }
}
