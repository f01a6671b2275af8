using System.Text.Json;
using KvSharp.Cli.Bench;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Tests.Bench;

/// <summary>`kvsharp bench --scenario inspector` on a tiny synthetic model: the JSON fields and the ABBA rounds, never the timings.</summary>
public sealed class InspectorScenarioTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-bench-inspector-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private BenchSettings Settings(string? browser = null)
    {
        string model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, model, contextLength: 128);
        return new BenchSettings
        {
            Scenario = BenchScenario.Inspector, ModelPath = model, GenTokens = 24, BlockSize = 4, Repetitions = 2,
            Json = true, Threads = 2, WarmUpSeconds = 0, KvBudgetMiB = 1, InspectorIntervalMs = 200, Browser = browser,
        };
    }

    [Fact]
    public void ReportsDecodeRatesWithAndWithoutTheEventStreamAndTheSnapshotCost()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(Settings(), stdout, stderr));
        using var doc = JsonDocument.Parse(stdout.ToString());
        var json = doc.RootElement;
        Assert.Equal("inspector", json.GetProperty("scenario").GetString());
        Assert.Equal("ABBA", json.GetProperty("order").GetString());
        Assert.Equal(2, json.GetProperty("decode_tps_without").GetArrayLength());
        Assert.Equal(2, json.GetProperty("decode_tps_with_stream").GetArrayLength());
        foreach (string field in new[] { "median_tps_without", "median_tps_with_stream", "snapshot_inspect_us", "snapshot_inspect_and_json_us", "snapshot_step_us" })
            Assert.True(json.GetProperty(field).GetDouble() > 0, field);
        Assert.True(json.GetProperty("snapshot_full_bytes").GetInt32() > 0);
        Assert.True(json.GetProperty("snapshot_delta_bytes").GetInt32() > 0, "snapshots between steps differ, so each after the first has a delta");
        Assert.Equal(200, json.GetProperty("inspector_interval_ms").GetDouble());
        Assert.Contains("| event stream ", stderr.ToString());
    }

    /// <summary>--browser: the "with" side is the page open in headless Chromium, whose own CPU time is reported.</summary>
    [Fact]
    public void WithABrowserTheWithSideIsThePageAndTheBrowsersCpuTimeIsReported()
    {
        string chromium = Environment.GetEnvironmentVariable("KVSHARP_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), $"this test needs Chromium at {chromium}: run `bash .ci/run` (it installs Debian's chromium) or set KVSHARP_CHROMIUM");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(Settings(chromium), stdout, stderr));
        using var doc = JsonDocument.Parse(stdout.ToString());
        var json = doc.RootElement;
        Assert.Equal("page", json.GetProperty("with").GetString());
        Assert.Equal(chromium, json.GetProperty("browser").GetString());
        Assert.Equal(2, json.GetProperty("decode_tps_with_page").GetArrayLength());
        Assert.True(json.GetProperty("median_tps_with_page").GetDouble() > 0);
        var cpu = json.GetProperty("browser_cpu_ms_per_s");
        Assert.Equal(2, cpu.GetArrayLength());
        foreach (var ms in cpu.EnumerateArray()) Assert.True(ms.GetDouble() >= 0);
        Assert.False(json.TryGetProperty("decode_tps_with_stream", out _), "with a browser, no bare stream reader is measured");
        Assert.Contains("| the page in ", stderr.ToString());
    }

    [Fact]
    public void AMissingBrowserIsAnErrorNamingIt()
    {
        string missing = Path.Combine(_dir, "no-such-browser");
        var e = Assert.Throws<FileNotFoundException>(() => BenchRunner.Run(Settings(missing), new StringWriter(), new StringWriter()));
        Assert.Equal($"--browser {missing}: no such file (give a Chromium-family executable, e.g. /usr/bin/chromium)", e.Message);
    }

    [Fact]
    public void ABrowserThatExitsAtOnceIsAnErrorNamingIt()
    {
        // /bin/true starts and exits before any page could open: the run stops with the reason, not a hang or a number.
        var e = Assert.Throws<InvalidOperationException>(() => BenchRunner.Run(Settings("/bin/true"), new StringWriter(), new StringWriter()));
        Assert.Equal("--browser /bin/true: the browser exited before the page opened its event stream", e.Message);
    }
}
