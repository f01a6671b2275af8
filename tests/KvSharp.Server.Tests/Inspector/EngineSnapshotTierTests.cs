using KvSharp.Cache.Tiers;
using KvSharp.Engine;
using static KvSharp.Server.Tests.Inspector.EngineSnapshotTests;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// <see cref="LlmEngine.Inspect"/> on an engine with a disk tier: a prompt is pushed out of a 16-block pool, written
/// down, and fetched back; at every step the snapshot's tier numbers are the tier's <see cref="KvTierStats"/>.
/// </summary>
public sealed class EngineSnapshotTierTests : IDisposable
{
    internal const string Shared = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
    internal static readonly string[] Others = ["The dog ran to the big red barn and", "Tom had a little car that he liked to drive", "One day, a bird flew over the tall green trees and"];

    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-snapshot-tier-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TierNumbersEqualTheTiersStatsAtEveryStep()
    {
        var ct = TestContext.Current.CancellationToken;
        using var model = LlmModel.Load(TestPaths.Model("stories260K.gguf"), new ModelLoadOptions { Threads = 1 });
        using var tiers = new KvTiers([new DiskKvTier(_dir, 64L << 20)], new KvTierOptions { FetchDeadline = TimeSpan.FromSeconds(30) }, ownsTiers: true);
        using var engine = new LlmEngine(model, new EngineOptions { ContextLength = 256, BlockSize = 4, BlockCount = 16, KvTiers = tiers });
        var stats = tiers.Stats[0];

        var before = Assert.Single(engine.Inspect().Tiers);
        AssertTierEquals(tiers, stats, before);
        Assert.Equal("disk", before.Name);
        Assert.Equal(0, before.FetchMeanMs);

        // The shared prompt, then others until its blocks are evicted from RAM and written to disk.
        engine.Submit(Request(model, Shared, 8));
        engine.RunUntilIdle();
        foreach (var other in Others) engine.Submit(Request(model, other + " " + other, 8));
        engine.RunUntilIdle();
        await tiers.FlushAsync(ct);
        var written = Assert.Single(engine.Inspect().Tiers);
        AssertTierEquals(tiers, stats, written);
        Assert.True(written.Writes > 0 && written.BytesOut > 0, $"nothing written to disk: {written}");
        Assert.Equal(0, written.WriteQueue);

        // Again: its blocks come back from disk inside the step; each step's snapshot has the step's fetches.
        long hitsBefore = stats.Hits;
        engine.Submit(Request(model, Shared, 8));
        while (engine.Step())
            AssertFetchesEqual(stats, Assert.Single(engine.Inspect().Tiers));
        await tiers.FlushAsync(ct);
        var after = Assert.Single(engine.Inspect().Tiers);
        AssertTierEquals(tiers, stats, after);
        Assert.True(after.Hits > hitsBefore, $"nothing came back from disk: {after}");
        Assert.True(after.BytesIn > 0 && after.Lookups >= after.Hits + after.Misses && after.FetchMeanMs > 0, $"{after}");
    }

    /// <summary>What lookups count (they run inside a step, so they are the step's); the writer's counts move on their own.</summary>
    private static void AssertFetchesEqual(KvTierStats stats, EngineSnapshotTier tier)
    {
        Assert.Equal(stats.Tier, tier.Name);
        Assert.Equal(stats.Hits, tier.Hits);
        Assert.Equal(stats.Misses, tier.Misses);
        Assert.Equal(stats.Refused, tier.Refused);
        Assert.Equal(stats.Timeouts, tier.Timeouts);
        Assert.Equal(stats.BytesIn, tier.BytesIn);
        Assert.Equal(stats.Lookups, tier.Lookups);
        Assert.Equal(stats.Lookups == 0 ? 0 : stats.FetchTime.TotalMilliseconds / stats.Lookups, tier.FetchMeanMs);
    }

    /// <summary>Every number, once the writer has nothing left to write.</summary>
    internal static void AssertTierEquals(KvTiers tiers, KvTierStats stats, EngineSnapshotTier tier)
    {
        AssertFetchesEqual(stats, tier);
        Assert.Equal(stats.Errors, tier.Errors);
        Assert.Equal(stats.BytesOut, tier.BytesOut);
        Assert.Equal(stats.Writes, tier.Writes);
        Assert.Equal(tiers.PendingWrites, tier.WriteQueue);
        Assert.Equal(tiers.DroppedWrites, tier.WritesDropped);
    }
}
