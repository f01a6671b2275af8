using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KvSharp.Engine;
using KvSharp.Server.Inspector;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>GET /v1/kv/snapshot and /v1/kv/events against an engine the test steps, and the page's files.</summary>
public partial class InspectorEndpointTests(InspectorServerFixture server) : IClassFixture<InspectorServerFixture>
{
    private const string Story = "Once upon a time there was a little girl named Lily. She loved to play in the park";

    [Fact]
    public async Task SnapshotEndpointNumbersEqualTheEnginesMetricsAtTheSameStep()
    {
        var ct = TestContext.Current.CancellationToken;
        var engine = server.Engine;
        var first = await server.SubmitAsync(Story, 8);
        var second = await server.SubmitAsync("The dog ran to the big red ball", 8, samples: 2);
        engine.Step();
        engine.Step();
        // The engine is still (nothing steps it but this test), so the endpoint and the engine describe the same step.
        var json = await GetSnapshotAsync(ct);
        var expected = engine.Inspect();
        EngineSnapshotTests.AssertMatchesEngine(engine, expected);
        var m = engine.Metrics;
        Assert.Equal(m.Steps, json.GetProperty("step").GetInt64());
        var counters = json.GetProperty("counters");
        Assert.Equal(m.Steps, counters.GetProperty("steps").GetInt64());
        Assert.Equal(m.GeneratedTokens, counters.GetProperty("generated_tokens").GetInt64());
        Assert.Equal(m.ComputedTokens, counters.GetProperty("computed_tokens").GetInt64());
        Assert.Equal(m.PrefixQueriedTokens, counters.GetProperty("prefix_queried_tokens").GetInt64());
        Assert.Equal(m.PrefixHitTokens, counters.GetProperty("prefix_hit_tokens").GetInt64());
        Assert.Equal(m.Preemptions, counters.GetProperty("preemptions").GetInt64());
        Assert.Equal(engine.RunningCount, counters.GetProperty("running").GetInt32());
        Assert.Equal(engine.WaitingCount, counters.GetProperty("waiting").GetInt32());
        var blocks = json.GetProperty("blocks");
        Assert.Equal(engine.Pool.UsedBlocks, blocks.GetProperty("in_use").GetInt32() + blocks.GetProperty("shared").GetInt32());
        Assert.True(blocks.GetProperty("shared").GetInt32() > 0, "the two samples share their prompt's blocks");
        Assert.Equal(engine.Pool.CachedBlocks, blocks.GetProperty("cached").GetInt32());
        Assert.Equal(expected.Blocks.Map, blocks.GetProperty("map").GetString());
        Assert.Equal(3, json.GetProperty("sequences").GetArrayLength());
        Assert.Equal(expected.Sequences.Select(s => s.BlockTable.ToArray()),
            json.GetProperty("sequences").EnumerateArray().Select(s => s.GetProperty("block_table").EnumerateArray().Select(b => b.GetInt32()).ToArray()));
        var model = json.GetProperty("model");
        Assert.Equal(2L * engine.Pool.Config.LayerCount * engine.Pool.Config.KvHeadCount * engine.Pool.Config.HeadDim * 4, model.GetProperty("bytes_per_token").GetInt64());
        Assert.Equal(4, model.GetProperty("bytes_per_element").GetDouble());

        await server.FinishAsync(first, second);
        var idle = await GetSnapshotAsync(ct);
        Assert.Equal(0, idle.GetProperty("sequences").GetArrayLength());
        Assert.Equal(engine.Metrics.Steps, idle.GetProperty("step").GetInt64());
    }

    [Fact]
    public async Task EventsStreamASnapshotWhenTheEngineChanges()
    {
        var ct = TestContext.Current.CancellationToken;
        var engine = server.Engine;
        using var response = await server.Client.GetAsync(InspectorEndpoints.EventsPath, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        // The engine only moves when the test steps it. The first event may be the feed's shared snapshot from up to
        // one interval before (another test's), so read until an event reaches the engine's change count.
        async Task<JsonElement> ReadCurrentAsync()
        {
            var e = await ServerSentEventsReader.ReadFirstAsync(reader, ct);
            while (e.GetProperty("changes").GetInt64() != engine.Changes) e = await ServerSentEventsReader.ReadFirstAsync(reader, ct);
            return e;
        }
        var current = await ReadCurrentAsync();
        Assert.Equal(engine.Changes, current.GetProperty("changes").GetInt64());

        var request = await server.SubmitAsync(Story, 4);
        var queued = await ReadCurrentAsync();
        Assert.Equal("queued", queued.GetProperty("sequences")[0].GetProperty("state").GetString());

        engine.Step();
        var stepped = await ReadCurrentAsync();
        Assert.Equal(engine.Metrics.Steps, stepped.GetProperty("step").GetInt64());
        Assert.Equal("decoding", stepped.GetProperty("sequences")[0].GetProperty("state").GetString());
        await server.FinishAsync(request);
    }

    [Fact]
    public async Task DeltaEventsCarryOnlyWhatChangedAndRebuildTheEnginesSnapshot()
    {
        var ct = TestContext.Current.CancellationToken;
        var engine = server.Engine;
        using var response = await server.Client.GetAsync(InspectorEndpoints.EventsPath + "?delta=true", HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var (type, state) = await InspectorEvents.ReadAsync(reader, ct);
        Assert.Equal("message", type);
        Assert.False(state.ContainsKey("base"), "the first event is a whole snapshot");

        var request = await server.SubmitAsync(Story, 12, samples: 2);
        int deltas = 0;
        bool mapPatched = false, treePatched = false;
        for (int step = 0; step < 4; step++)
        {
            if (step > 0) engine.Step();
            // Every event after the first is a delta on the one before, until the page has the engine's state.
            while (state["changes"]!.GetValue<long>() != engine.Changes)
            {
                var (t, delta) = await InspectorEvents.ReadAsync(reader, ct);
                Assert.Equal("delta", t);
                Assert.False(delta.ContainsKey("model"), "the model never changes, so no delta carries it");
                mapPatched |= delta["map_runs"] is { } runs && runs.AsArray().Count > 0;
                treePatched |= delta["prefix_tree_runs"] is { } nodes && nodes.AsArray().Count > 0;
                Assert.Null(delta["prefix_tree"]); // the tree comes as changed runs of nodes, never whole
                InspectorEvents.Apply(state, delta);
                deltas++;
            }
            // The engine is still: what the deltas built is the snapshot of now, part for part.
            var now = JsonNode.Parse(JsonSerializer.SerializeToUtf8Bytes(engine.Inspect(), InspectorJson.Default.EngineSnapshotDetail))!.AsObject();
            foreach (string part in new[] { "step", "model", "blocks", "prefix_tree", "counters", "tiers" })
                Assert.Equal(InspectorEvents.Json(now[part]), InspectorEvents.Json(state[part]));
            Assert.Equal(now["sequences"]!.AsArray().Select(s => InspectorEvents.Json(s!["block_table"])), state["sequences"]!.AsArray().Select(s => InspectorEvents.Json(s!["block_table"])));
        }
        Assert.True(deltas >= 4, $"{deltas} delta events for a submission and three steps");
        Assert.True(mapPatched, "the steps allocated blocks, so some delta patched the map");
        Assert.True(treePatched, "the steps published blocks, so some delta patched the prefix tree");
        await server.FinishAsync(request);
    }

    [Fact]
    public async Task ThePageAndItsFilesComeFromTheServerAloneWithNothingExternal()
    {
        var ct = TestContext.Current.CancellationToken;
        using var page = await server.Client.GetAsync("/", ct);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        string html = await page.Content.ReadAsStringAsync(ct);
        var references = LinkPattern().Matches(html).Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("/inspector/inspector.js", references);
        Assert.Contains("/inspector/inspector.css", references);
        var texts = new List<string> { html };
        foreach (string path in references)
        {
            Assert.StartsWith(InspectorAssets.Prefix, path);
            using var file = await server.Client.GetAsync(path, ct);
            Assert.Equal(HttpStatusCode.OK, file.StatusCode);
            texts.Add(await file.Content.ReadAsStringAsync(ct));
            // Unchanged since: 304, by its ETag.
            using var again = new HttpRequestMessage(HttpMethod.Get, path);
            again.Headers.IfNoneMatch.Add(file.Headers.ETag!);
            using var notModified = await server.Client.SendAsync(again, ct);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }
        // No CDN, no web font, no remote script: the only absolute URL is SVG's namespace name, which is never fetched.
        foreach (string text in texts)
            Assert.All(UrlPattern().Matches(text), m => Assert.Equal("http://www.w3.org/2000/svg", m.Value));
        using var missing = await server.Client.GetAsync("/inspector/nothing.js", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    private async Task<JsonElement> GetSnapshotAsync(CancellationToken ct)
    {
        using var response = await server.Client.GetAsync(InspectorEndpoints.SnapshotPath, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct)).RootElement.Clone();
    }

    [GeneratedRegex(@"(?:src|href)=""([^""]+)""")]
    private static partial Regex LinkPattern();

    [GeneratedRegex(@"https?://[^\s""'`)]+")]
    private static partial Regex UrlPattern();
}
