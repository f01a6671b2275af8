using System.Text.Json;
using System.Text.Json.Nodes;
using KvSharp.Server.Inspector;
using Microsoft.Playwright;
using static KvSharp.Server.Tests.Inspector.EngineSnapshotTierTests;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// A server whose prefix cache has a disk tier (<see cref="KvTierServerTests.Fixture"/>): the snapshot endpoint
/// carries the tier's numbers, and the page's "KV tiers" panel shows a hit once a prompt evicted from RAM came back
/// from disk.
/// </summary>
public class InspectorTierTests(KvTierServerTests.Fixture server) : IClassFixture<KvTierServerTests.Fixture>
{
    /// <summary>The shared prompt, others until it is evicted to disk, then the shared prompt again (a tier hit).</summary>
    private async Task EvictAndFetchBackAsync(CancellationToken ct)
    {
        await server.CompleteAsync(Prompt(Shared), ct);
        foreach (var other in Others) await server.CompleteAsync(Prompt(other + " " + other), ct);
        await server.Tiers.FlushAsync(ct);
        long hits = server.Tiers.Stats[0].Hits;
        await server.CompleteAsync(Prompt(Shared), ct);
        await server.Tiers.FlushAsync(ct);
        Assert.True(server.Tiers.Stats[0].Hits > hits, "nothing came back from disk");
    }

    private static JsonObject Prompt(string text) => new() { ["prompt"] = text, ["max_tokens"] = 8, ["ignore_eos"] = true, ["temperature"] = 0 };

    [Fact]
    public async Task SnapshotEndpointCarriesTheTiersStats()
    {
        var ct = TestContext.Current.CancellationToken;
        await EvictAndFetchBackAsync(ct);
        using var response = await server.Client.GetAsync(InspectorEndpoints.SnapshotPath, ct);
        response.EnsureSuccessStatusCode();
        var json = JsonSerializer.Deserialize<JsonElement>(await response.Content.ReadAsStringAsync(ct));
        // The server is idle and the writes flushed: the JSON and the tier's stats describe the same moment.
        var tier = Assert.Single(json.GetProperty("tiers").EnumerateArray().ToList());
        var stats = server.Tiers.Stats[0];
        Assert.Equal("disk", tier.GetProperty("name").GetString());
        foreach (var (field, value) in new (string, long)[]
        {
            ("hits", stats.Hits), ("misses", stats.Misses), ("refused", stats.Refused), ("timeouts", stats.Timeouts), ("errors", stats.Errors),
            ("bytes_in", stats.BytesIn), ("bytes_out", stats.BytesOut), ("writes", stats.Writes), ("lookups", stats.Lookups),
            ("write_queue", server.Tiers.PendingWrites), ("writes_dropped", server.Tiers.DroppedWrites),
        })
            Assert.Equal(value, tier.GetProperty(field).GetInt64());
        Assert.Equal(stats.FetchTime.TotalMilliseconds / stats.Lookups, tier.GetProperty("fetch_mean_ms").GetDouble(), 9);
        Assert.True(stats.Hits > 0 && stats.Writes > 0);
        AssertTierEquals(server.Tiers, stats, Assert.Single(server.Engine.Inspect().Tiers));
    }

    [Fact]
    public async Task PageShowsATierHitLive()
    {
        var ct = TestContext.Current.CancellationToken;
        var (playwright, browser) = await InspectorBrowser.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync(server.Server.BaseAddress.ToString());
        await InspectorPageTests.WaitForAsync(page, "document.querySelector('#connection').dataset.state === 'live' && !document.querySelector('#tiers-panel').hidden");
        Assert.Equal("disk", await page.InnerTextAsync("#tiers tbody tr td:first-child"));

        await EvictAndFetchBackAsync(ct);
        string hits = server.Tiers.Stats[0].Hits.ToString();
        await InspectorPageTests.WaitForAsync(page, $"document.querySelector('#tiers tbody tr[data-tier=disk] td:nth-child(2)').textContent === '{hits}'");
        Assert.NotEqual("0 B", await page.InnerTextAsync("#tiers tbody tr[data-tier=disk] td:nth-child(6)"));
        Assert.Empty(errors);
    }
}
