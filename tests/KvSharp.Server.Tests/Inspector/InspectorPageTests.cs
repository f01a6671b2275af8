using Microsoft.Playwright;

namespace KvSharp.Server.Tests.Inspector;

/// <summary>
/// The inspector page in headless Chromium, against a server whose engine the test steps: requests go in through
/// the API, and the page must show the blocks they hold, their sequences, the blocks forks share, a prefix hit when a
/// prompt comes back, and at the end a pool with every block free or cached. Leaves a screenshot in the test output.
/// </summary>
public class InspectorPageTests(InspectorServerFixture server) : IClassFixture<InspectorServerFixture>
{
    private const string Story = "Once upon a time there was a little girl named Lily. She loved to play in the park";
    private const string Dog = "The dog ran to the big red ball and";

    [Fact]
    public async Task PageShowsBlocksSequencesAndPrefixHitsLive()
    {
        var (playwright, browser) = await InspectorBrowser.LaunchAsync();
        using var _ = playwright;
        await using var __ = browser;
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 1180 } });
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync(server.Server.BaseAddress.ToString());
        await WaitForAsync(page, "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#model-name').textContent === 'stories260K.gguf'");
        await WaitForAsync(page, $"document.querySelectorAll('#block-map .cell').length === {server.Engine.Pool.BlockCount}");
        Assert.True(await page.IsHiddenAsync("#tiers-panel"), "the KV tiers panel shows on an engine without tiers");
        Assert.True(await page.IsHiddenAsync("#exact-rows-stat"), "KIVI's exact rows show on an F32 engine");

        // Every cell keeps its element from update to update: mark them all now and look for the marks at the end.
        await page.EvaluateAsync("() => document.querySelectorAll('#block-map .cell').forEach(c => c.kept = true)");

        // Two requests queued: the page lists them before a step runs.
        var story = await server.SubmitAsync(Story, 12);
        var dogs = await server.SubmitAsync(Dog, 12, samples: 2);
        await WaitForAsync(page, "document.querySelectorAll('#sequences tbody tr[data-state=queued]').length === 2");

        // One step computes both prompts and forks the second's samples: three sequences decode, two of them on shared blocks.
        server.Engine.Step();
        await WaitForAsync(page, "document.querySelectorAll('#sequences tbody tr[data-state=decoding]').length === 3");
        await WaitForAsync(page, "document.querySelectorAll('#block-map .cell.u').length > 0 && document.querySelectorAll('#block-map .cell.s').length > 0");
        int inUse = await page.EvalOnSelectorAllAsync<int>("#block-map .cell.u, #block-map .cell.s", "cells => cells.length");
        Assert.Equal(server.Engine.Pool.UsedBlocks, inUse);
        Assert.Equal(server.Engine.Pool.UsedBlocks.ToString(), (await page.InnerTextAsync("#pool-blocks")).Split(" / ")[0]);
        // Rows keep their elements too: a step later the same rows show the new counts.
        await page.EvaluateAsync("() => document.querySelectorAll('#sequences tbody tr').forEach(r => r.kept = true)");
        server.Engine.Step();
        await WaitForAsync(page, $"document.querySelector('#step').textContent === '{server.Engine.Metrics.Steps}'");
        Assert.True(await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#sequences tbody tr')].every(r => r.kept)"),
            "a sequence's row was rebuilt instead of updated");
        // A growing block table keeps its chips and gains one at its end: a block (4 positions) later, every row's first
        // chip is the same element and the chips read exactly the engine's block tables.
        await page.EvaluateAsync("() => document.querySelectorAll('#sequences .blocks span').forEach(c => c.kept = true)");
        var tablesBefore = server.Engine.Inspect().Sequences.Select(q => q.BlockTable.Count).ToArray();
        for (int i = 0; i < 4; i++) server.Engine.Step();
        await WaitForAsync(page, $"document.querySelector('#step').textContent === '{server.Engine.Metrics.Steps}'");
        var tables = server.Engine.Inspect().Sequences.Select(q => string.Join(' ', q.BlockTable)).ToArray();
        Assert.True(tables.Select(t => t.Split(' ').Length).Zip(tablesBefore).Any(p => p.First > p.Second), "no block table grew: the check below shows nothing");
        Assert.Equal(tables, await page.EvalOnSelectorAllAsync<string[]>("#sequences tbody tr", "rows => rows.map(r => [...r.querySelectorAll('.blocks span')].map(c => c.textContent).join(' '))"));
        Assert.True(await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#sequences .blocks')].every(b => b.firstElementChild.kept)"),
            "a growing block table's chips were rebuilt instead of extended");
        await server.FinishAsync(story, dogs);

        // The same prompt again: its full blocks come from the prefix cache, and the tree and the hit rate say so.
        // The tree's runs keep their elements too (a run is found again by its first block).
        await WaitForAsync(page, "document.querySelectorAll('#prefix-tree .node').length > 0");
        await page.EvaluateAsync("() => document.querySelectorAll('#prefix-tree .node').forEach(n => n.kept = true)");
        var again = await server.SubmitAsync(Story, 12);
        var more = await server.SubmitAsync(Story + " with her friends", 12, samples: 2);
        server.Engine.Step();
        await WaitForAsync(page, "document.querySelectorAll('#prefix-tree .node.hit').length > 0 && document.querySelector('#hit-rate').textContent !== '0%'");
        Assert.True(await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#prefix-tree .node.hit')].some(n => n.kept)"),
            "the prefix tree was rebuilt instead of updated: no run that got a hit kept its element");
        var cached = await page.EvalOnSelectorAllAsync<int[]>("#sequences tbody tr", "rows => rows.map(r => Number(r.children[3].textContent))");
        Assert.Equal(3, cached.Length);
        Assert.All(cached, c => Assert.True(c > 0, "every sequence adopted the cached prefix"));
        await SaveScreenshotAsync(page);
        await AssertHiddenPageDrawsNothingAsync(page);

        // Finished: nothing holds a block; what the requests computed stays cached.
        await server.FinishAsync(again, more);
        await WaitForAsync(page, "document.querySelectorAll('#block-map .cell.u, #block-map .cell.s').length === 0 && !document.querySelector('#no-sequences').hidden");
        var cells = await page.EvalOnSelectorAllAsync<string[]>("#block-map .cell", "cells => cells.map(c => c.className)");
        Assert.All(cells, c => Assert.True(c is "cell f" or "cell c", $"a cell is {c} after every request finished"));
        Assert.Contains("cell c", cells);
        Assert.Equal(server.Engine.Pool.CachedBlocks, cells.Count(c => c == "cell c"));
        Assert.True(await page.EvaluateAsync<bool>("() => [...document.querySelectorAll('#block-map .cell')].every(c => c.kept)"),
            "a block map cell was replaced instead of given a new class");
        // One frame at most per event received: updates that arrive together are drawn once.
        var stats = await page.EvaluateAsync<Dictionary<string, int>>("() => window.inspectorStats");
        Assert.InRange(stats["frames"], 1, stats["events"]);
        Assert.Empty(errors);

        // A KIVI engine's blocks (the engine side is EngineSnapshotTests'): its exact rows show beside the pool's bytes.
        await page.EvaluateAsync("() => renderPool({ ...latest.blocks, exact_rows_bytes: 3 * 1048576, exact_rows_reserved_bytes: 8 * 1048576 })");
        Assert.False(await page.IsHiddenAsync("#exact-rows-stat"));
        Assert.Equal("3.00 MiB / 8.00 MiB", await page.TextContentAsync("#exact-rows-bytes"));
        Assert.Empty(errors);
    }

    /// <summary>
    /// While the tab is hidden the page closes its stream and draws nothing, however the engine moves; shown again, it
    /// reconnects and catches up. (Headless Chromium is never hidden, so the test tells the page it is.)
    /// </summary>
    private async Task AssertHiddenPageDrawsNothingAsync(IPage page)
    {
        await page.EvaluateAsync("() => { Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' }); document.dispatchEvent(new Event('visibilitychange')); }");
        await WaitForAsync(page, "document.querySelector('#connection').dataset.state === 'paused'");
        var before = await page.EvaluateAsync<int[]>("() => [window.inspectorStats.events, window.inspectorStats.frames]");
        string step = await page.InnerTextAsync("#step");
        server.Engine.Step();
        // Several of the feed's intervals: a page that still listened would have had the step's snapshot by now.
        await Task.Delay(1000);
        Assert.Equal(before, await page.EvaluateAsync<int[]>("() => [window.inspectorStats.events, window.inspectorStats.frames]"));
        Assert.Equal(step, await page.InnerTextAsync("#step"));

        await page.EvaluateAsync("() => { Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' }); document.dispatchEvent(new Event('visibilitychange')); }");
        await WaitForAsync(page, $"document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#step').textContent === '{server.Engine.Metrics.Steps}'");
    }

    /// <summary>Waits (a bounded while) for the page to satisfy <paramref name="condition"/>, a JavaScript expression.</summary>
    internal static async Task WaitForAsync(IPage page, string condition)
    {
        try
        {
            await page.WaitForFunctionAsync($"() => {condition}", null, new PageWaitForFunctionOptions { Timeout = 30_000 });
        }
        catch (TimeoutException)
        {
            Assert.Fail($"within 30 s the page never showed: {condition}");
        }
    }

    /// <summary>The page mid-run, kept with the test's output (artifacts/inspector.png) and attached to the test result.</summary>
    private static async Task SaveScreenshotAsync(IPage page)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "artifacts", "inspector.png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] png = await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        TestContext.Current.AddAttachment("inspector.png", png, "image/png");
    }
}
