using System.Text.Json;
using KvSharp.Cli.Bench;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Tests.Bench;

/// <summary>`kvsharp bench --scenario tiers` on a tiny synthetic model and prefix: the JSON fields, never the timings.</summary>
public sealed class TiersScenarioTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-bench-tiers-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReportsTimeToFirstTokenFromRamDiskRedisAndRecompute()
    {
        string model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, model, contextLength: 128);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var settings = new BenchSettings
        {
            Scenario = BenchScenario.Tiers, ModelPath = model, PromptTokens = 40, BlockSize = 4, Repetitions = 1,
            Json = true, Threads = 2, WarmUpSeconds = 0,
        };
        Assert.Equal(0, BenchRunner.Run(settings, stdout, stderr));
        using var doc = JsonDocument.Parse(stdout.ToString());
        var json = doc.RootElement;
        foreach (string field in new[] { "ttft_ms_ram", "ttft_ms_disk", "ttft_ms_redis", "ttft_ms_recompute" })
            Assert.True(json.GetProperty(field).GetDouble() > 0, field);
        Assert.Equal("embedded garnet", json.GetProperty("redis").GetString());
        Assert.Equal(40, json.GetProperty("prefix_tokens").GetInt32());
        Assert.Contains("| disk ", stderr.ToString());
    }
}
