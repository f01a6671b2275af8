using System.Text.Json;
using KvSharp.Cli.Bench;
using KvSharp.Synthetic;
using KvSharp.Tensors;

namespace KvSharp.Tests.Bench;

/// <summary>The engine scenarios (capacity, concurrency, multiturn) on a micro synthetic model: fields and invariants, never timings.</summary>
public sealed class EngineScenarioTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-engine-bench-").FullName;
    private readonly string _model;

    public EngineScenarioTests()
    {
        _model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, _model, contextLength: 256);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private JsonElement Run(BenchSettings settings)
    {
        var stdout = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(settings with { ModelPath = _model, Json = true, Threads = 2, MeasureBandwidth = false }, stdout, TextWriter.Null));
        using var doc = JsonDocument.Parse(stdout.ToString());
        return doc.RootElement.Clone();
    }

    [Fact]
    public void CapacityComparesPagedWithContiguousSessions()
    {
        // micro: 512 KV bytes per token; 1 MiB budget = 2048 tokens = 512 blocks of 4; context 256 -> 8 contiguous
        // sessions; 24 + 8 tokens fill 31 positions = 8 blocks each -> 64 paged sessions, which run without preemption.
        var json = Run(new BenchSettings { Scenario = BenchScenario.Capacity, PromptTokens = 24, GenTokens = 8, KvBudgetMiB = 1, BlockSize = 4 });
        Assert.Equal(8, json.GetProperty("sessions_contiguous").GetInt64());
        Assert.Equal(64, json.GetProperty("sessions_paged").GetInt64());
        Assert.Equal(0, json.GetProperty("preemptions").GetInt64());
        // Only partly filled last blocks are waste: at most one block of 4 per 32-token session, and at least the
        // final empty slot of each session that is at its full length.
        Assert.InRange(json.GetProperty("kv_waste_fraction").GetDouble(), 0.0, 4.0 / 32);
        Assert.Equal(1 - 32.0 / 256, json.GetProperty("kv_waste_fraction_contiguous").GetDouble(), 6);
    }

    [Fact]
    public void ConcurrencyReportsARunPerLevel()
    {
        var json = Run(new BenchSettings { Scenario = BenchScenario.Concurrency, PromptTokens = 4, GenTokens = 6 });
        var runs = json.GetProperty("runs");
        Assert.Equal([1, 4, 16, 64], runs.EnumerateArray().Select(r => r.GetProperty("concurrency").GetInt32()));
        Assert.All(runs.EnumerateArray(), r => Assert.True(r.GetProperty("tokens_per_s").GetDouble() > 0));
        // The median of three runs per level.
        Assert.All(runs.EnumerateArray(), r =>
        {
            Assert.Equal(3, r.GetProperty("repetitions").GetInt32());
            Assert.InRange(r.GetProperty("tokens_per_s").GetDouble(), r.GetProperty("tokens_per_s_min").GetDouble(), r.GetProperty("tokens_per_s_max").GetDouble());
        });
        // Each of the c sequences decodes 5 tokens after its first (which came from the prefill).
        Assert.Equal([5L, 20L, 80L, 320L], runs.EnumerateArray().Select(r => r.GetProperty("generated_tokens").GetInt64()));
    }

    [Fact]
    public void MultiturnReusesTheHistory()
    {
        var json = Run(new BenchSettings { Scenario = BenchScenario.Multiturn, Turns = 3, PromptTokens = 8, GenTokens = 8, BlockSize = 4 });
        var runs = json.GetProperty("runs");
        Assert.Equal(3, runs.GetArrayLength());
        Assert.Equal(0, runs[0].GetProperty("cached_prompt_tokens").GetInt32());
        Assert.True(runs[2].GetProperty("cached_prompt_tokens").GetInt32() >= 12);
        Assert.InRange(json.GetProperty("prefix_hit_rate").GetDouble(), 0.5, 1.0);
        Assert.All(runs.EnumerateArray(), r =>
        {
            Assert.True(r.GetProperty("ttft_ms_with_cache").GetDouble() > 0);
            Assert.True(r.GetProperty("ttft_ms_without_cache").GetDouble() > 0);
        });
    }
}
