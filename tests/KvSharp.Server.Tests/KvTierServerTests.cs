using System.Text.Json.Nodes;
using KvSharp.Cache.Tiers;
using KvSharp.Engine;

namespace KvSharp.Server.Tests;

/// <summary>A server whose prefix cache has a disk tier: a prompt evicted from RAM is served from disk with the same text, and /metrics shows the tier's series.</summary>
public class KvTierServerTests(KvTierServerTests.Fixture server) : IClassFixture<KvTierServerTests.Fixture>
{
    public sealed class Fixture : ServerFixture
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-server-tier-").FullName;
        public KvTiers Tiers { get; }

        public Fixture() => Tiers = new KvTiers([new DiskKvTier(_dir, 64L << 20)], new KvTierOptions { FetchDeadline = TimeSpan.FromSeconds(30) });

        protected override ServerOptions Options => new()
        {
            Port = 0,
            Engine = new EngineOptions { ContextLength = 256, BlockSize = 4, BlockCount = 16, KvTiers = Tiers },
        };

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            Tiers.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static JsonObject Prompt(string text) => new() { ["prompt"] = text, ["max_tokens"] = 8, ["ignore_eos"] = true, ["temperature"] = 0 };

    [Fact]
    public async Task AnEvictedPromptComesBackFromDiskWithTheSameText()
    {
        var ct = TestContext.Current.CancellationToken;
        const string shared = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
        var first = await server.CompleteAsync(Prompt(shared), ct);
        foreach (var other in new[] { "The dog ran to the big red barn and", "Tom had a little car that he liked to drive", "One day, a bird flew over the tall green trees and" })
            await server.CompleteAsync(Prompt(other + " " + other), ct);
        await server.Tiers.FlushAsync(ct);
        long before = server.Engine.PrefixCache.TierHitTokens;
        var again = await server.CompleteAsync(Prompt(shared), ct);
        Assert.True(server.Engine.PrefixCache.TierHitTokens > before, "nothing came back from disk");
        Assert.Equal(ServerFixture.Text(first), ServerFixture.Text(again));

        using var response = await server.Client.GetAsync("/metrics", ct);
        string text = await response.Content.ReadAsStringAsync(ct);
        foreach (string series in new[] { "kvsharp_kv_tier_hits_total", "kvsharp_kv_tier_bytes_in_bytes_total", "kvsharp_kv_tier_fetch_latency_seconds_bucket" })
            Assert.Contains("\n" + series, text);
        Assert.Contains("tier=\"disk\"", text);
    }
}
