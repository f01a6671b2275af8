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

    [Fact]
    public void ReportsDecodeRatesWithAndWithoutTheEventStreamAndTheSnapshotCost()
    {
        string model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, model, contextLength: 128);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var settings = new BenchSettings
        {
            Scenario = BenchScenario.Inspector, ModelPath = model, GenTokens = 24, BlockSize = 4, Repetitions = 2,
            Json = true, Threads = 2, WarmUpSeconds = 0, KvBudgetMiB = 1, InspectorIntervalMs = 200,
        };
        Assert.Equal(0, BenchRunner.Run(settings, stdout, stderr));
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
}
