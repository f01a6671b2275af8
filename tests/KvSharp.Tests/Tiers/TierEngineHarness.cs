using KvSharp.Cache.Tiers;
using KvSharp.Engine;
using KvSharp.Sampling;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Tests.Tiers;

/// <summary>
/// An engine over a tiny synthetic model whose prefix cache sits on one tier, with what every tier's tests do: run a
/// 24-token shared prompt, push it out of the 10-block pool with other prompts, and compare an output (tokens and
/// log-probabilities, so only bit-identical logits pass) with recomputing the request without any cache.
/// Shared by the disk tier's tests and the Redis tier's (linked into KvSharp.Redis.Tests).
/// </summary>
public sealed class TierEngineHarness : IDisposable
{
    private static readonly SyntheticShape Micro = new("micro", "test shape", 64, 2, 4, 2, 128, 300, 64);
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-tier-model-").FullName;

    // 24 prompt tokens: 5 full blocks of 4 are looked up (the last token is always computed).
    public static readonly int[] Shared = [1, 17, 250, 33, 9, 120, 77, 45, 201, 6, 88, 143, 12, 260, 31, 99, 190, 54, 7, 222, 65, 140, 28, 11];
    public const int SharedBlockTokens = 20;

    public LlmModel Model { get; }
    public KvTiers Tiers { get; }
    public LlmEngine Engine { get; }

    public TierEngineHarness(IKvBlockTier tier)
    {
        string path = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(Micro, GgmlType.Q8_0, path, contextLength: 64, seed: 3);
        Model = LlmModel.Load(path, new ModelLoadOptions { Threads = 2 });
        // Deadlines no loaded test machine reaches, for fetches and writes alike (a write abandoned under load would leave
        // the tier without a block and fail a test about what comes back, not how fast: seen once in a full-suite run).
        Tiers = new KvTiers([tier], new KvTierOptions { FetchDeadline = TimeSpan.FromSeconds(30), WriteTimeout = TimeSpan.FromSeconds(30) }, ownsTiers: true);
        Engine = new LlmEngine(Model, new EngineOptions { ContextLength = 64, BlockSize = 4, BlockCount = 10, KvTiers = Tiers });
    }

    public KvTierStats Stats => Tiers.Stats[0];

    /// <summary>
    /// Asserts that the last lookups took all <see cref="SharedBlockTokens"/> from the tier, naming the tier's counts
    /// when they did not (a lost write, a miss, an error and a refused value look alike from the hit count alone).
    /// </summary>
    public void AssertSharedPrefixFromTier()
    {
        long hit = Engine.PrefixCache.TierHitTokens;
        var t = Stats;
        Assert.True(hit == SharedBlockTokens,
            $"tier hit tokens {hit}, expected {SharedBlockTokens}; {Tiers.Tiers[0].Name}: lookups {t.Lookups}, hits {t.Hits}, misses {t.Misses}, " +
            $"refused {t.Refused}, timeouts {t.Timeouts}, errors {t.Errors}, writes {t.Writes}; writes dropped {Tiers.DroppedWrites}, pending {Tiers.PendingWrites}");
    }

    public static EngineRequest Request(int[] prompt, string? salt = null) => new()
    {
        PromptTokens = prompt,
        Options = new GenerationOptions { MaxTokens = 6, StopAtEndOfGeneration = false, Sampling = SamplingOptions.Greedy, TopLogprobs = 3 },
        CacheSalt = salt,
    };

    /// <summary>Output tokens and every reported log-probability: equal only if the logits were bit-identical.</summary>
    public static (int[] Tokens, float[] Logprobs) Run(LlmEngine engine, EngineRequest request)
    {
        var handle = engine.Submit(request);
        engine.RunUntilIdle();
        Assert.Equal(RequestStatus.Finished, handle.Status);
        var logprobs = new List<float>();
        while (handle.Stream.TryRead(out var t))
            if (t.Logprobs is { } lp) logprobs.AddRange(lp.Top.Select(x => x.Logprob).Prepend(lp.Sampled.Logprob));
        return ([.. handle.OutputTokens[0]], [.. logprobs]);
    }

    public (int[] Tokens, float[] Logprobs) Run(EngineRequest request) => Run(Engine, request);

    /// <summary>Runs the shared prompt, then other prompts until none of its blocks is left in RAM, then waits for the tier writes.</summary>
    public async Task ComputeAndEvictSharedAsync(string? salt = null)
    {
        Run(Request(Shared, salt));
        for (int i = 0; i < 4; i++) Run(Request([290 + i, .. Enumerable.Range(0, 23).Select(t => (t * 13 + i * 71) % 290 + 5)]));
        await Tiers.FlushAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Asserts that <paramref name="output"/> is what recomputing the request without any cache gives, bit for bit.</summary>
    public void AssertRecomputed(EngineRequest request, (int[] Tokens, float[] Logprobs) output)
    {
        using var plain = new LlmEngine(Model, new EngineOptions { ContextLength = 64, BlockSize = 4, BlockCount = 10, PrefixCaching = false });
        var expected = Run(plain, request);
        Assert.Equal(expected.Tokens, output.Tokens);
        Assert.Equal(expected.Logprobs, output.Logprobs);
    }

    public void Dispose()
    {
        Engine.Dispose();
        Tiers.Dispose();
        Model.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
