using KvSharp.Cache.Paged;
using KvSharp.Engine;
using KvSharp.Sampling;

namespace KvSharp.Tests.Engine;

/// <summary>Continuous batching over the paged cache: batching never changes results; prefix caching reuses blocks.</summary>
public class EngineTests
{
    private static LlmModel Stories() => LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 2 });

    private static readonly string[] Prompts =
    [
        "Once upon a time", "Lily saw a big red ball", "The dog ran to the park", "Tom had a little car",
        "One day, a bird", "The sun was hot and", "Sam and Sue went to", "A cat sat on the mat",
    ];

    private static EngineRequest Request(LlmModel model, string prompt, int maxTokens = 24, string? salt = null, int samples = 1, SamplingOptions? sampling = null) => new()
    {
        PromptTokens = model.Tokenizer.Encode(prompt, addSpecial: true, parseSpecial: false),
        Options = new GenerationOptions { MaxTokens = maxTokens, StopAtEndOfGeneration = false, Sampling = sampling ?? SamplingOptions.Greedy },
        CacheSalt = salt,
        SampleCount = samples,
    };

    /// <summary>What a request produces alone, through the single-session path (contiguous cache).</summary>
    private static int[] Alone(LlmModel model, EngineRequest r)
    {
        using var session = model.CreateSession(new SessionOptions { ContextLength = 512 });
        session.GenerateTokens(r.PromptTokens, r.Options).ToList();
        return session.Tokens.Skip(r.PromptTokens.Count).ToArray();
    }

    [Fact]
    public void ConcurrentRequestsEqualEachRequestAloneIncludingLateJoiners()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 256, MaxStepTokens = 64 });
        var requests = Prompts.Select((p, i) => Request(model, p, maxTokens: 16 + 3 * i)).ToArray();
        var handles = new List<RequestHandle>();
        for (int i = 0; i < 4; i++) handles.Add(engine.Submit(requests[i]));
        for (int step = 0; step < 5; step++) engine.Step();
        for (int i = 4; i < requests.Length; i++) handles.Add(engine.Submit(requests[i])); // join mid-flight
        engine.RunUntilIdle();
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(RequestStatus.Finished, handles[i].Status);
            Assert.Equal(Alone(model, requests[i]), handles[i].OutputTokens[0]);
        }
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void SharedPrefixReusesEveryComputedPosition()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 128, BlockSize = 4 });
        var first = Request(model, "Once upon a time, there was a little girl named Lily. She", maxTokens: 8);
        var h1 = engine.Submit(first);
        engine.RunUntilIdle();
        Assert.Equal(0, h1.CachedPromptTokens);

        // Same prompt: every position but the last prompt token's is reused (that one is computed for its logits).
        var h2 = engine.Submit(first);
        engine.RunUntilIdle();
        int prompt = first.PromptTokens.Count;
        Assert.Equal(prompt - 1, h2.CachedPromptTokens);
        Assert.Equal(h1.OutputTokens[0], h2.OutputTokens[0]);

        // The first request's prompt + output as the next turn's prefix: its whole history is reused.
        var turn2 = new EngineRequest
        {
            PromptTokens = [.. first.PromptTokens, .. h1.OutputTokens[0], .. model.Tokenizer.Encode(" Then", false, false)],
            Options = first.Options,
        };
        var h3 = engine.Submit(turn2);
        engine.RunUntilIdle();
        // Every position the first request computed, its last partial block's too; the last sampled token never was.
        Assert.Equal(prompt + 8 - 1, h3.CachedPromptTokens);
        Assert.Equal(Alone(model, turn2), h3.OutputTokens[0]);
        engine.Pool.Verify();
    }

    [Fact]
    public void HitsThatEndInsideABlockGiveTheLogitsOfAColdPrefill()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 64, BlockSize = 16 });
        using var cold = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 64, BlockSize = 16, PrefixCaching = false });
        EngineRequest WithLogprobs(IReadOnlyList<int> prompt) => new()
        {
            PromptTokens = prompt,
            Options = new GenerationOptions { MaxTokens = 6, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy, TopLogprobs = 3 },
        };
        var opening = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She liked to play outside", true, false);
        var first = WithLogprobs(opening);
        var (firstOutput, _) = Tiers.TierEngineHarness.Run(engine, first);

        // The next turn: the whole history (ending inside a block, in the first turn's tail), then more text.
        var next = WithLogprobs([.. opening, .. firstOutput, .. model.Tokenizer.Encode(" Then the sun", false, false)]);
        int history = opening.Length + firstOutput.Length - 1;
        Assert.NotEqual(0, history % 16);
        // A prompt that leaves the first turn's at a token inside a block: every token they share is a hit.
        var diverging = WithLogprobs([.. opening.Take(21), .. model.Tokenizer.Encode(" a big dog", false, false)]);
        int shared = diverging.PromptTokens.Zip(opening).TakeWhile(p => p.First == p.Second).Count();
        Assert.InRange(shared % 16, 1, 15);
        foreach (var (request, cached) in new[] { (next, history), (diverging, shared) })
        {
            long hitsBefore = engine.PrefixCache.HitTokens;
            var hit = Tiers.TierEngineHarness.Run(engine, request);
            Assert.Equal(cached, engine.PrefixCache.HitTokens - hitsBefore);
            // Tokens and every log-probability: equal only if the logits are bit-identical to computing it all.
            var expected = Tiers.TierEngineHarness.Run(cold, request);
            Assert.Equal(expected.Tokens, hit.Tokens);
            Assert.Equal(expected.Logprobs, hit.Logprobs);
        }
        engine.Pool.Verify();
        Assert.Equal(0, engine.Pool.UsedBlocks);
    }

    [Fact]
    public void RequestsArrivingTogetherWithOneSystemPromptComputeItOnce()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 128, BlockSize = 4, MaxStepTokens = 64 });
        const string system = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. ";
        var requests = new[] { "Lily saw a big red ball.", "Tom had a little car.", "The sun was hot." }
            .Select(p => Request(model, system + p, maxTokens: 6)).ToArray();
        int shared = requests[0].PromptTokens.Zip(requests[1].PromptTokens).TakeWhile(p => p.First == p.Second).Count();
        Assert.True(shared >= 16, $"{shared} shared tokens");
        var handles = requests.Select(engine.Submit).ToArray();
        engine.RunUntilIdle();
        Assert.Equal(0, handles[0].CachedPromptTokens);
        // The others waited for the first to publish the system prompt's blocks, then adopted them.
        foreach (var h in handles.Skip(1)) Assert.True(h.CachedPromptTokens >= shared / 4 * 4, $"{h.CachedPromptTokens} of {shared} shared tokens cached");
        for (int i = 0; i < requests.Length; i++) Assert.Equal(Alone(model, requests[i]), handles[i].OutputTokens[0]);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void DifferentSaltsNeverShareBlocks()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 128, BlockSize = 4 });
        var a = engine.Submit(Request(model, "Once upon a time, there was a little girl", salt: "tenant-a"));
        engine.RunUntilIdle();
        var b = engine.Submit(Request(model, "Once upon a time, there was a little girl", salt: "tenant-b"));
        engine.RunUntilIdle();
        var a2 = engine.Submit(Request(model, "Once upon a time, there was a little girl", salt: "tenant-a"));
        engine.RunUntilIdle();
        Assert.Equal(0, b.CachedPromptTokens);
        Assert.True(a2.CachedPromptTokens > 0);
        Assert.Equal(a.OutputTokens[0], b.OutputTokens[0]);
        Assert.Equal(a.OutputTokens[0], a2.OutputTokens[0]);
    }

    [Fact]
    public void ForcedHashCollisionsFallBackToRecompute()
    {
        using var model = Stories();
        // Every block hashes the same: only the token comparison keeps results right.
        using var engine = new LlmEngine(model, new EngineOptions
        {
            ContextLength = 512, BlockCount = 128, BlockSize = 4, HashFunction = (_, _) => 42UL,
        });
        var x = engine.Submit(Request(model, "Once upon a time, there was a little girl"));
        engine.RunUntilIdle();
        var y = engine.Submit(Request(model, "The dog ran to the park and played with a ball"));
        engine.RunUntilIdle();
        Assert.Equal(1, y.CachedPromptTokens); // the BOS row, the one token the prompts share
        Assert.Equal(Alone(model, Request(model, "The dog ran to the park and played with a ball")), y.OutputTokens[0]);
        Assert.Equal(Alone(model, Request(model, "Once upon a time, there was a little girl")), x.OutputTokens[0]);
        engine.Pool.Verify();
    }

    [Fact]
    public void SaltsStaySeparateEvenWhenEveryHashCollides()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions
        {
            ContextLength = 512, BlockCount = 128, BlockSize = 4, HashFunction = (_, _) => 7UL,
        });
        engine.Submit(Request(model, "Once upon a time, there was a little girl", salt: "tenant-a"));
        engine.RunUntilIdle();
        var b = engine.Submit(Request(model, "Once upon a time, there was a little girl", salt: "tenant-b"));
        engine.RunUntilIdle();
        Assert.Equal(0, b.CachedPromptTokens);
    }

    [Fact]
    public void ParallelSamplesShareThePromptBlocks()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 128, BlockSize = 4 });
        var sampling = new SamplingOptions { Temperature = 0.9f, TopK = 40, Seed = 7 };
        var h = engine.Submit(Request(model, "Once upon a time, there was a little girl named", maxTokens: 12, samples: 4, sampling: sampling));
        engine.Step(); // prefill of the shared prompt, then the samples fork
        int promptBlocks = (h.Request.PromptTokens.Count + 3) / 4;
        Assert.True(engine.Pool.UsedBlocks < 4 * promptBlocks, $"{engine.Pool.UsedBlocks} blocks for 4 samples of {promptBlocks} prompt blocks");
        engine.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, h.Status);
        Assert.All(h.OutputTokens, o => Assert.Equal(12, o.Count));
        Assert.True(h.OutputTokens.Select(o => string.Join(",", o)).Distinct().Count() > 1, "samples with different seeds should differ");
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void ARequestsSamplesTakeTheirRunningPlacesWhenAdmitted()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 128, BlockSize = 4, MaxRunningSequences = 3 });
        var sampling = new SamplingOptions { Temperature = 0.9f, TopK = 40, Seed = 7 };
        var first = engine.Submit(Request(model, "Once upon a time", maxTokens: 8));
        var forked = engine.Submit(Request(model, "Lily saw a big red ball", maxTokens: 8, samples: 3, sampling: sampling));
        var last = engine.Submit(Request(model, "The dog ran to the park", maxTokens: 8));
        int most = 0;
        while (engine.Step()) most = Math.Max(most, engine.RunningCount);
        // The three samples cannot start beside the first request (1 + 3 > 3); they run alone, then the last request.
        Assert.Equal(3, most);
        Assert.All(new[] { first, forked, last }, h => Assert.Equal(RequestStatus.Finished, h.Status));
        Assert.All(forked.OutputTokens, o => Assert.Equal(8, o.Count));
        Assert.Equal(Alone(model, first.Request), first.OutputTokens[0]);
        Assert.Equal(Alone(model, last.Request), last.OutputTokens[0]);

        var tooMany = engine.Submit(Request(model, "Tom had a little car", samples: 4, sampling: sampling));
        Assert.Equal(RequestStatus.Rejected, tooMany.Status);
        Assert.Contains("4 samples exceed the 3 sequences the engine runs at once", tooMany.Error);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void TinyBudgetPreemptsAndStillMatchesRunningAlone()
    {
        using var model = Stories();
        // 12 blocks of 4 = 48 positions for 8 requests of ~30 positions each: constant preemption.
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 12, BlockSize = 4, MaxStepTokens = 32 });
        var requests = Prompts.Select(p => Request(model, p, maxTokens: 20)).ToArray();
        var handles = requests.Select(engine.Submit).ToArray();
        engine.RunUntilIdle();
        Assert.True(engine.Metrics.Preemptions > 0);
        for (int i = 0; i < requests.Length; i++) Assert.Equal(Alone(model, requests[i]), handles[i].OutputTokens[0]);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        engine.Pool.Verify();
    }

    [Fact]
    public void RequestsThatCanNeverFitAreRejectedWithAReason()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 64, BlockCount = 4, BlockSize = 4 });
        var tooLong = engine.Submit(Request(model, "Once upon a time, there was a little girl named Lily.", maxTokens: 60));
        Assert.Equal(RequestStatus.Rejected, tooLong.Status);
        Assert.Contains("exceeds the context length of 64", tooLong.Error);
        var tooBig = engine.Submit(Request(model, "Once upon a time", maxTokens: 20));
        Assert.Equal(RequestStatus.Rejected, tooBig.Status);
        Assert.Contains("the whole budget holds 4", tooBig.Error);
        var empty = engine.Submit(new EngineRequest { PromptTokens = [] });
        Assert.Contains("empty", empty.Error);
        Assert.True(tooLong.Completion.IsCompleted);
    }

    [Fact]
    public void CancellationFreesBlocksAtOnce()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 64, BlockSize = 4 });
        var h = engine.Submit(Request(model, "Once upon a time", maxTokens: 200));
        for (int i = 0; i < 5; i++) engine.Step();
        Assert.True(engine.Pool.UsedBlocks > 0);
        h.Cancel();
        Assert.Equal(RequestStatus.Cancelled, h.Status);
        Assert.Equal(0, engine.Pool.UsedBlocks);
        Assert.False(engine.HasWork);
    }

    [Fact]
    public void MetricsCountPrefixHitsAndTokens()
    {
        using var model = Stories();
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 512, BlockCount = 64, BlockSize = 4 });
        var r = Request(model, "Once upon a time, there was a little girl", maxTokens: 5);
        engine.Submit(r);
        engine.RunUntilIdle();
        engine.Submit(r);
        engine.RunUntilIdle();
        Assert.Equal(10, engine.Metrics.GeneratedTokens);
        Assert.True(engine.Metrics.PrefixHitTokens > 0);
        Assert.True(engine.Metrics.PrefixQueriedTokens >= engine.Metrics.PrefixHitTokens);
    }
}
