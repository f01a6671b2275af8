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

    private JsonElement Run(BenchSettings settings) => RunWithTable(settings).Json;

    [Fact]
    public void CapacityComparesPagedWithContiguousSessions()
    {
        // micro: 512 KV bytes per token; 1 MiB budget = 2048 tokens = 512 blocks of 4; context 256 -> 8 contiguous
        // sessions; 24 + 8 tokens fill 31 positions = 8 blocks each -> 64 paged sessions, which run without preemption.
        var json = CapacityIn1MiB(context: 256, prompt: 24, gen: 8).Json;
        Assert.Equal(8, json.GetProperty("sessions_contiguous").GetInt64());
        Assert.Equal(64, json.GetProperty("sessions_paged").GetInt64());
        Assert.Equal(0, json.GetProperty("preemptions").GetInt64());
        // KV waste, one meaning for every layout: the reserved slots a finished session leaves unfilled. It fills
        // 24 + 8 - 1 = 31 positions: paged reserves 8 blocks of 4 (1 of 32 unfilled), contiguous its 256-token context.
        Assert.Equal(31, json.GetProperty("filled_positions_per_session").GetInt32());
        Assert.Equal(1.0 / 32, json.GetProperty("kv_waste_fraction").GetDouble(), 12);
        Assert.Equal(1 - 31.0 / 256, json.GetProperty("kv_waste_fraction_contiguous").GetDouble(), 12);
        // The occupancy measured while running is reported under its own name, and is at least the arithmetic's waste.
        Assert.InRange(json.GetProperty("paged_unfilled_fraction_at_peak").GetDouble(), 1.0 / 32 - 1e-12, 1.0);
        Assert.Equal(8.0, json.GetProperty("paged_over_contiguous").GetDouble());
    }

    [Fact]
    public void CapacityWithNoContiguousSessionSaysNotApplicableInsteadOfInfinity()
    {
        // A 4096-token context reserves 2 MiB per contiguous session: none fits the 1 MiB budget, 64 paged ones do.
        var (json, table) = CapacityIn1MiB(context: 4096, prompt: 24, gen: 8);
        Assert.Equal(0, json.GetProperty("sessions_contiguous").GetInt64());
        Assert.Equal(64, json.GetProperty("sessions_paged").GetInt64());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("paged_over_contiguous").ValueKind);
        Assert.Contains("paged/contiguous = n/a: not one contiguous session fits (each reserves 2 MiB, the budget is 1 MiB)", table);
        // One figure per layout, printed alike: paged 1/32, contiguous 1 - 31/4096, ideal 0.
        Assert.Matches(@"\| paged +\| +64 \| +3\.12% \|", table);
        Assert.Matches(@"\| contiguous +\| +0 \| +99\.24% \|", table);
        Assert.Matches(@"\| ideal +\| +\d+ \| +0\.00% \|", table);
    }

    [Fact]
    public void CapacityWhereNotOneSessionFitsReportsZeroSessions()
    {
        // 2000 + 100 tokens need 525 blocks of 4; the 1 MiB budget holds 512.
        var (json, table) = CapacityIn1MiB(context: 4096, prompt: 2000, gen: 100);
        Assert.Equal(0, json.GetProperty("sessions_paged").GetInt64());
        Assert.Equal(0, json.GetProperty("sessions_ideal").GetInt64());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("paged_over_contiguous").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("paged_unfilled_fraction_at_peak").ValueKind);
        Assert.Contains("paged/contiguous = n/a", table);
    }

    /// <summary>The capacity scenario in a 1 MiB budget (2048 tokens of micro's KV) with blocks of 4.</summary>
    private (JsonElement Json, string Table) CapacityIn1MiB(int context, int prompt, int gen) => RunWithTable(new BenchSettings
    {
        Scenario = BenchScenario.Capacity, ContextLength = context, PromptTokens = prompt, GenTokens = gen, KvBudgetMiB = 1, BlockSize = 4,
    });

    private (JsonElement Json, string Table) RunWithTable(BenchSettings settings)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(settings with { ModelPath = _model, Json = true, Threads = 2, MeasureBandwidth = false }, stdout, stderr));
        using var doc = JsonDocument.Parse(stdout.ToString());
        return (doc.RootElement.Clone(), stderr.ToString());
    }

    [Fact]
    public void ConcurrencyReportsARunPerLevel()
    {
        var (json, table) = RunWithTable(new BenchSettings { Scenario = BenchScenario.Concurrency, PromptTokens = 4, GenTokens = 6 });
        // Batched figures name their kernels and CPU as the speed scenario's do.
        KernelRecord.AssertNamed(json, table);
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
        // The paired ratio: each round's rate over the same round's single sequence (so exactly 1 for one sequence).
        Assert.Equal(1.0, runs[0].GetProperty("speedup_vs_1_paired").GetDouble());
        Assert.All(runs.EnumerateArray(), r => Assert.True(r.GetProperty("speedup_vs_1_paired").GetDouble() > 0));
    }

    /// <summary>A KIVI type runs in the engine scenarios without --block-size: their blocks default to the engine's 32.</summary>
    [Fact]
    public void ConcurrencyWithKiviTakesTheEnginesBlockSize()
    {
        // 1 MiB is the pool's: the exact rows of 64 sequences (2 MiB on micro) come on top, as for every engine scenario.
        var settings = new BenchSettings { Scenario = BenchScenario.Concurrency, PromptTokens = 4, GenTokens = 6, KvBudgetMiB = 1, KvKeyType = KvSharp.Cache.KvElementType.Kivi4 };
        Assert.Equal(32, settings.BlockSize);
        Assert.Equal(16, new BenchSettings().BlockSize);
        Assert.Equal(8, (settings with { BlockSize = 8 }).BlockSize);
        var runs = Run(settings).GetProperty("runs");
        Assert.Equal([5L, 20L, 80L, 320L], runs.EnumerateArray().Select(r => r.GetProperty("generated_tokens").GetInt64()));
    }

    [Fact]
    public void MultiturnReusesTheHistory()
    {
        var (json, table) = RunWithTable(new BenchSettings { Scenario = BenchScenario.Multiturn, Turns = 3, PromptTokens = 8, GenTokens = 8, BlockSize = 4 });
        KernelRecord.AssertNamed(json, table);
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
