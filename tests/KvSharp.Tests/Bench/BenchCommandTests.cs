using System.Text.Json;
using KvSharp.Cli.Bench;
using KvSharp.Synthetic;
using KvSharp.Tensors;
using KvSharp.Tests.Cli;

namespace KvSharp.Tests.Bench;

/// <summary>`kvsharp bench` on a tiny synthetic model with tiny lengths: the output's shape, never its timings.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kvsharp-bench-").FullName;
    private readonly string _model;

    public BenchCommandTests()
    {
        _model = Path.Combine(_dir, "micro.gguf");
        SyntheticModelBuilder.Write(SyntheticModelTests.Micro, GgmlType.Q8_0, _model, contextLength: 64);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] CommonFields =
        ["prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms", "total_s", "kv_bytes_per_token", "kv_bytes_per_session", "peak_working_set_bytes"];

    private static JsonElement RunInProcess(BenchSettings settings, out string table)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, BenchRunner.Run(settings with { Json = true, Threads = 2, WarmUpSeconds = 0 }, stdout, stderr));
        table = stderr.ToString();
        using var doc = JsonDocument.Parse(stdout.ToString());
        return doc.RootElement.Clone();
    }

    [Fact]
    public void KvTypeF16HalvesTheKvBytesEveryScenarioReports()
    {
        var speed = RunInProcess(new BenchSettings
        {
            Scenario = BenchScenario.Speed, ModelPath = _model, PromptTokens = 8, GenTokens = 4, Repetitions = 1, KvType = KvSharp.Cache.KvElementType.F16,
            MeasureBandwidth = false,
        }, out string table);
        Assert.Equal("f16", speed.GetProperty("kv_type").GetString());
        Assert.Equal(256, speed.GetProperty("kv_bytes_per_token").GetInt64());
        Assert.Contains("256 bytes/token (F16 K and V)", table);

        var r = CliRunner.Run("bench", "--model", _model, "--scenario", "concurrency", "-p", "4", "-n", "3", "-r", "1", "--warmup", "0",
            "--threads", "2", "--kv-type", "f16", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("f16", doc.RootElement.GetProperty("kv_type").GetString());
        Assert.Equal(4, doc.RootElement.GetProperty("runs").GetArrayLength());

        var bad = CliRunner.Run("bench", "--model", _model, "--kv-type", "f8");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("--kv-type must be one of f32, f16, q8_0, q4_0, kivi4, kivi2; got 'f8'", bad.Stderr);
    }

    [Fact]
    public void KvSharpIsaPicksTheKernelPathAndABadValueFailsBeforeAnyTiming()
    {
        string[] args = ["bench", "--model", _model, "--scenario", "speed", "--prompt-tokens", "4", "--gen-tokens", "2",
            "--repetitions", "1", "--warmup", "0", "--threads", "1", "--json"];
        var scalar = CliRunner.RunWithEnvironment(("KVSHARP_ISA", "scalar"), args);
        Assert.True(scalar.ExitCode == 0, scalar.Stderr);
        using var doc = JsonDocument.Parse(scalar.Stdout);
        foreach (var p in doc.RootElement.GetProperty("kernel_paths").EnumerateObject()) Assert.Equal("scalar", p.Value.GetString());
        Assert.Equal("scalar", doc.RootElement.GetProperty("cpu").GetProperty("isa_override").GetString());
        Assert.Contains("(KVSHARP_ISA=scalar)", scalar.Stderr);

        var bad = CliRunner.RunWithEnvironment(("KVSHARP_ISA", "sse9"), args);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("KVSHARP_ISA: 'sse9' is not a kernel path", bad.Stderr);
        Assert.DoesNotContain("pp4", bad.Stderr);
    }

    [Fact]
    public void WriteToADirectoryIsRefusedBeforeTheModelIsBuilt()
    {
        var r = CliRunner.Run("bench", "--synthetic", "tiny", "--write", _dir);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains($"--write {_dir} is a directory", r.Stderr);
        Assert.DoesNotContain("writing", r.Stderr);
    }

    [Fact]
    public void SpeedScenarioPrintsOneJsonObjectWithTheRequiredFields()
    {
        var json = RunInProcess(new BenchSettings
        {
            Scenario = BenchScenario.Speed, ModelPath = _model, PromptTokens = 8, GenTokens = 4, Repetitions = 2,
        }, out string table);
        Assert.Equal("speed", json.GetProperty("scenario").GetString());
        foreach (string f in CommonFields) Assert.True(json.GetProperty(f).GetDouble() > 0, f);
        Assert.Equal(8, json.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, json.GetProperty("gen_tokens").GetInt32());
        // micro: 2 x 2 layers x 2 kv heads x 16 head dim x 4 bytes = 512 bytes per token; 8 + 4 tokens.
        Assert.Equal(512, json.GetProperty("kv_bytes_per_token").GetInt64());
        Assert.Equal(512 * 12, json.GetProperty("kv_bytes_per_session").GetInt64());
        Assert.True(json.GetProperty("memory_bandwidth_bytes_per_s").GetDouble() > 0);
        Assert.True(json.GetProperty("decode_bandwidth_ratio").GetDouble() > 0);
        Assert.True(json.GetProperty("weight_bytes_per_token").GetInt64() > 0);
        var runs = json.GetProperty("runs");
        Assert.Equal(1, runs.GetArrayLength());
        Assert.Equal(2, runs[0].GetProperty("prefill_s_runs").GetArrayLength());
        // The paired ratio: each decode run over the probe taken just before it, median of the runs.
        var decodeSeconds = runs[0].GetProperty("decode_s_runs").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var roundBandwidths = runs[0].GetProperty("memory_bandwidth_runs").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(2, roundBandwidths.Length);
        Assert.All(roundBandwidths, b => Assert.True(b > 0));
        double weightBytes = json.GetProperty("weight_bytes_per_token").GetInt64();
        double expectedPaired = decodeSeconds.Select((t, i) => 4 / t / (roundBandwidths[i] / weightBytes)).Average(); // median of two
        Assert.Equal(expectedPaired, json.GetProperty("decode_bandwidth_ratio_paired").GetDouble(), 9);
        Assert.Contains("paired (each decode run over a probe", table);
        Assert.Contains("| pp8 ", table);
        // Which kernels ran and on what CPU: every weight type of the model named with a path, in the JSON and the table.
        KernelRecord.AssertNamed(json, table);
        Assert.Contains("| tg4 ", table);
    }

    [Fact]
    public void CacheScenarioComparesWithNoneAndReportsTheSpeedup()
    {
        var json = RunInProcess(new BenchSettings
        {
            Scenario = BenchScenario.Cache, ModelPath = _model, PromptTokens = 12, GenTokens = 6, MeasureBandwidth = false,
        }, out string table);
        Assert.Equal("cache", json.GetProperty("scenario").GetString());
        foreach (string f in CommonFields.Append("speedup").Append("predicted_flops_speedup")) Assert.True(json.GetProperty(f).GetDouble() > 0, f);
        Assert.Equal(512 * 18, json.GetProperty("kv_bytes_per_session").GetInt64());
        var none = json.GetProperty("none");
        Assert.Equal(12 + Enumerable.Range(1, 5).Sum(i => 12 + i), none.GetProperty("tokens_computed").GetInt32());
        Assert.Equal(12 + 5, json.GetProperty("contiguous").GetProperty("tokens_computed").GetInt32());
        Assert.True(json.GetProperty("predicted_flops_speedup").GetDouble() > 1);
        Assert.Equal(1, json.GetProperty("runs").GetArrayLength()); // explicit lengths: one measurement, no sweep
        Assert.Contains("| 12 + 6 ", table);
        // The speedup and the FLOPs ratio sit on the cached row; the none row is the baseline they divide.
        string cachedRow = table.Split('\n').Single(l => l.StartsWith("| 12 + 6 |") && l.Contains(" contiguous |"));
        string noneRow = table.Split('\n').Single(l => l.StartsWith("| 12 + 6 |") && l.Contains(" none |"));
        Assert.Matches(@"\| +\d+\.\dx \| +\d+\.\dx \| +9,216 \|$", cachedRow);
        Assert.Matches(@"\| +baseline \| +\| +0 \|$", noneRow);
        Assert.Contains("speedup vs none", table);
        Assert.Contains("estimated duration: ", table);
    }

    [Fact]
    public void CacheScenarioWithOneGeneratedTokenStillWritesJson()
    {
        // One generated token comes from the prefill: no decode step, so the decode times are (nearly) zero and a
        // decode ratio has (almost) nothing to divide by; it must come out as a number or null, never Infinity or NaN.
        var json = RunInProcess(new BenchSettings
        {
            Scenario = BenchScenario.Cache, ModelPath = _model, PromptTokens = 4, GenTokens = 1, MeasureBandwidth = false,
        }, out _);
        Assert.Contains(json.GetProperty("decode_speedup").ValueKind, new[] { JsonValueKind.Null, JsonValueKind.Number });
        Assert.True(json.GetProperty("speedup").GetDouble() > 0);
    }

    [Fact]
    public void SpeedScenarioNamesTheBandwidthBoundAFloor()
    {
        var json = RunInProcess(new BenchSettings
        {
            Scenario = BenchScenario.Speed, ModelPath = _model, PromptTokens = 4, GenTokens = 2, Repetitions = 1,
        }, out string table);
        Assert.Contains("lower bound", json.GetProperty("bandwidth_bound_note").GetString());
        Assert.Contains("a floor of the true limit", table);
        // micro's weights are a few hundred KB: wherever the cache size can be read, they fit and the output says so.
        if (json.GetProperty("last_level_cache_bytes").ValueKind == JsonValueKind.Number)
            Assert.Contains("fit in the", table);
    }

    [Fact]
    public void RatiosWithNothingToDivideByAreUndefinedNotInfinite()
    {
        Assert.Equal(2.5, new Ratio(5, 2).Value);
        Assert.Null(new Ratio(5, 0).Value);
        Assert.Null(new Ratio(0, 0).Value);
        Assert.Null(new Ratio(double.NaN, 1).Value);
        Assert.Null(new Ratio(5, 0).Json);
        Assert.Equal("2.50x", new Ratio(5, 2).Text("F2"));
        Assert.Equal("n/a", new Ratio(5, 0).Text("F2"));
    }

    [Fact]
    public void TheEtaCountsTheRestOfTheRunAndEveryRunToCome()
    {
        // Three runs planned: a cached one of 10 FLOPs, then two recomputing ones of 1000.
        var eta = new ScenarioEta([(true, 10.0), (false, 1000.0), (false, 1000.0)]);
        eta.ObserveWarmUp(cached: true, flops: 1, seconds: 0.5);   // warm-up: 0.5 s per cached FLOP
        eta.ObserveWarmUp(cached: false, flops: 100, seconds: 1);  // 0.01 s per recomputed FLOP
        Assert.Equal(10 * 0.5 + 2000 * 0.01, eta.SecondsPlanned, 9);
        eta.Start();                                                // the cached run: 4 FLOPs in 1 s, its own rate now
        Assert.Equal(6 * 0.25 + 2000 * 0.01, eta.SecondsLeft(cached: true, runFlops: 10, doneFlops: 4, elapsed: 1), 9);
        eta.Observe(cached: true, flops: 10, seconds: 3);
        eta.Start();                                                // the first recomputing run: 500 FLOPs in 2 s
        Assert.Equal(500 * 0.004 + 1000 * 0.004, eta.SecondsLeft(cached: false, runFlops: 1000, doneFlops: 500, elapsed: 2), 9);
        eta.Observe(cached: false, flops: 1000, seconds: 5);
        eta.Start();                                                // the last: finished runs and this one's progress
        Assert.Equal(900 * (6.0 / 1100), eta.SecondsLeft(cached: false, runFlops: 1000, doneFlops: 100, elapsed: 1), 9);
        Assert.Equal("6 min 10 s", ScenarioEta.Format(370));
        Assert.Equal("2 h 05 min", ScenarioEta.Format(7500));
        Assert.Equal("45 s", ScenarioEta.Format(45));
    }

    [Fact]
    public void DefaultCacheLengthsMustFitTheContext()
    {
        // No --prompt-tokens/--gen-tokens: the default P = 2000, N = 500 does not fit a 64-token context.
        var settings = new BenchSettings { Scenario = BenchScenario.Cache, ModelPath = _model, MeasureBandwidth = false };
        var e = Assert.Throws<ArgumentException>(() => BenchRunner.Run(settings, TextWriter.Null, TextWriter.Null));
        Assert.Contains("2500 tokens exceeds the context length 64", e.Message);
    }

    [Fact]
    public void FlopsArithmeticCountsWeightsAndAttention()
    {
        var c = SyntheticShape.Tiny.ToConfig();
        // One decode step with nothing cached before it: 2 x every weight + attention over 1 position.
        double layer = 4.0 * 288 * 288 + 3.0 * 288 * 768;
        Assert.Equal(2 * 6 * layer + 2.0 * 288 * 32000 + 4.0 * 288 * 6, CacheScenario.StepFlops(c, 1, 0));
        var (cached, none) = CacheScenario.GenerationFlops(c, 2000, 500);
        Assert.InRange(none / cached, 30, 1000);
        // `bench --help` says the cache scenario's none baseline recomputes about 33 TFLOP with the defaults (tiny,
        // P 2000 + N 500, then the sweep): keep it true.
        double total = none + CacheScenario.SweepGen.Sum(g => CacheScenario.GenerationFlops(c, CacheScenario.SweepPrompt, g).None);
        Assert.Equal(33, Math.Round(total / 1e12));
    }

    [Fact]
    public void CliWritesASyntheticModelAndBenchesItAsJson()
    {
        string path = Path.Combine(_dir, "written.gguf");
        var w = CliRunner.Run("bench", "--synthetic", "tiny", "--type", "q4_0", "--context", "64", "--write", path);
        Assert.Equal(0, w.ExitCode);
        Assert.Contains("wrote " + path, w.Stderr);
        var r = CliRunner.Run("bench", "--model", path, "--scenario", "speed", "-p", "4", "-n", "2", "-r", "1", "--warmup", "0", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("Q4_0", doc.RootElement.GetProperty("weight_types").GetString());
        Assert.Equal(64, doc.RootElement.GetProperty("context_length").GetInt32());
        Assert.Contains("memory read bandwidth", r.Stderr);
    }

    [Theory]
    [InlineData("unknown synthetic shape 'huge'", "--synthetic", "huge")]
    [InlineData("unknown weight type 'iq2_xxs'", "--synthetic", "tiny", "--type", "iq2_xxs")]
    [InlineData("--scenario must be one of speed, cache, capacity, concurrency, multiturn, serve, tiers, router, inspector; got 'latency'", "--scenario", "latency")]
    [InlineData("model file not found", "--model", "/nonexistent/model.gguf")]
    public void BadOptionsGiveOneLineAndExitCodeOne(string message, params string[] args)
    {
        var r = CliRunner.Run(["bench", .. args]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void LengthsBeyondTheContextAreRejected()
    {
        var r = CliRunner.Run("bench", "--model", _model, "--scenario", "cache", "-p", "60", "-n", "10");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--prompt-tokens + --gen-tokens = 70 tokens exceeds the context length 64", r.Stderr);

        var deep = CliRunner.Run("bench", "--model", _model, "--scenario", "speed", "-p", "4", "-n", "10", "--depth", "60");
        Assert.Equal(1, deep.ExitCode);
        Assert.Contains("--depth + --gen-tokens + 1 = 71 tokens exceeds the context length 64", deep.Stderr);
    }

    [Fact]
    public void DepthTimesTheDecodeWithThatManyPositionsCachedAndCountsTheirRowsInTheBound()
    {
        // A prompt shorter than the decode (it sized the session's context alone, and the decode ran out of room).
        var settings = new BenchSettings { Scenario = BenchScenario.Speed, ModelPath = _model, PromptTokens = 2, GenTokens = 6, Repetitions = 1 };
        var shallow = RunInProcess(settings, out string shallowTable);
        var deep = RunInProcess(settings with { Depth = 40 }, out string deepTable);

        Assert.Equal(0, shallow.GetProperty("depth").GetInt32());
        Assert.Equal(1 + 6 + 1, shallow.GetProperty("cache_positions_after_decode").GetInt32()); // BOS, the decoded tokens, the last sampled
        Assert.Equal(40, deep.GetProperty("depth").GetInt32());
        Assert.Equal(40 + 6 + 1, deep.GetProperty("cache_positions_after_decode").GetInt32());
        Assert.Contains("tg6 @ d40", deepTable);
        Assert.DoesNotContain("@ d", shallowTable);

        // The bound's bytes: the weights alone at no depth; at depth 40 also the rows of 40 + (6 + 1) / 2 positions on average.
        long weights = shallow.GetProperty("weight_bytes_per_token").GetInt64(), kv = deep.GetProperty("kv_bytes_per_token").GetInt64();
        Assert.Equal(weights, shallow.GetProperty("bytes_read_per_decode_token").GetDouble());
        Assert.Equal(weights + kv * 43.5, deep.GetProperty("bytes_read_per_decode_token").GetDouble());
        Assert.Contains("the cache's rows at d40", deepTable);

        var elsewhere = CliRunner.Run("bench", "--model", _model, "--scenario", "concurrency", "--depth", "8");
        Assert.Equal(1, elsewhere.ExitCode);
        Assert.Contains("--depth sets where the speed scenario's decode starts: it belongs to --scenario speed, not concurrency", elsewhere.Stderr);
    }
}
