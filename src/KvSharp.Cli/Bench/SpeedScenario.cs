using System.Text.Json.Nodes;
using KvSharp.Cache;
using KvSharp.Engine;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Prefill and decode throughput, measured like llama-bench's pp/tg tests: "pp P" evaluates a P-token prompt in one
/// prefill (time to the first token's logits); "tg N" generates N tokens one at a time after a 1-token prompt (the
/// cache starts empty), or with <c>--depth D</c> ("tg N @ dD", llama-bench's -d) after a D-token prompt, so that each
/// step also reads D to D + N positions of keys and values: long-context decode. Each length is measured
/// <c>repetitions</c> times after a warm-up (3 s by default) and the median is reported. Decode is compared with the
/// memory-bandwidth limit: every decode step reads every weight matrix once, and at a depth the cache's rows as well.
/// </summary>
public static class SpeedScenario
{
    public static readonly (int Prompt, int Gen)[] DefaultRuns = [(128, 64), (512, 256)];

    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        var runs = s.PromptTokens != null || s.GenTokens != null
            ? [(s.PromptTokens ?? DefaultRuns[0].Prompt, s.GenTokens ?? DefaultRuns[0].Gen)]
            : DefaultRuns;
        int reps = s.Repetitions ?? 5, depth = s.Depth ?? 0;
        foreach (var (p, n) in runs)
        {
            info.CheckFits(p, "--prompt-tokens");
            // The decode holds its prompt (BOS, or the depth), the n tokens it runs and the one the last step samples.
            info.CheckFits(DecodeContext(depth, n), depth > 0 ? "--depth + --gen-tokens + 1" : "--gen-tokens + 2 (BOS and the last sampled token)");
        }

        double? bandwidth = null;
        if (s.MeasureBandwidth)
        {
            log.Progress("measuring memory read bandwidth (512 MiB, best of 5)...");
            bandwidth = ProbeBandwidth(info.Model, MemoryBandwidth.DefaultBytes, 5);
            log.Line($"memory read bandwidth: {bandwidth / 1e9:F2} GB/s ({info.Threads} threads, best of 5 passes over 512 MiB)");
        }

        var model = info.Model;
        int maxContext = runs.Max(r => Math.Max(r.Item1, DecodeContext(depth, r.Item2)));
        using var session = model.CreateSession(new SessionOptions { CacheMode = KvCacheMode.Static, ContextLength = maxContext, KeyElementType = s.KeyElementType, ValueElementType = s.ValueElementType });

        var result = info.Describe("speed");
        result["repetitions"] = reps;
        var runArray = new JsonArray();
        var tableRows = new BenchTable("test", "tokens", "tokens/s (median)", "min", "max", "ms (median)");
        foreach (var (p, n) in runs)
        {
            var prompt = BenchRunner.Prompt(model, p);
            // The decode's prompt: BOS alone, or the depth's worth of tokens, computed before the clock starts.
            var before = BenchRunner.Prompt(model, Math.Max(depth, 1));
            string tg = depth > 0 ? $"tg{n} @ d{depth}" : $"tg{n}";
            // Bytes each decode step reads: the weights, and at a depth the mean number of cached rows over the run.
            double readBytes = info.WeightBytesPerToken + (depth > 0 ? info.KvBytesPerToken * (depth + (n + 1) / 2.0) : 0);

            log.Progress($"pp{p}: warm-up");
            WarmUp(s.WarmUpSeconds, () => Prefill(session, prompt));
            var ppTimes = new List<double>();
            for (int i = 0; i < reps; i++)
            {
                ppTimes.Add(Prefill(session, prompt));
                log.Progress($"pp{p}: run {i + 1}/{reps}: {p / ppTimes[^1]:F1} tok/s");
            }

            log.Progress($"{tg}: warm-up");
            WarmUp(s.WarmUpSeconds, () => Decode(session, before, n));
            var tgTimes = new List<double>();
            var roundBandwidths = new List<double>();
            for (int i = 0; i < reps; i++)
            {
                // This host's bandwidth drifts by tens of percent within minutes (other tenants): a probe just before
                // each decode run gives that run its own bound, so the paired ratio does not mix two moments.
                if (bandwidth != null) roundBandwidths.Add(ProbeBandwidth(model, RoundProbeBytes, 3));
                tgTimes.Add(Decode(session, before, n));
                log.Progress($"{tg}: run {i + 1}/{reps}: {n / tgTimes[^1]:F1} tok/s");
            }
            log.EndProgress();

            double ppMedian = BenchRunner.Median(ppTimes), tgMedian = BenchRunner.Median(tgTimes);
            tableRows.Add($"pp{p}", $"{p}", $"{p / ppMedian:F1}", $"{p / ppTimes.Max():F1}", $"{p / ppTimes.Min():F1}", $"{ppMedian * 1e3:F1}");
            tableRows.Add(tg, $"{n}", $"{n / tgMedian:F1}", $"{n / tgTimes.Max():F1}", $"{n / tgTimes.Min():F1}", $"{tgMedian * 1e3:F1}");

            var run = new JsonObject
            {
                ["prompt_tokens"] = p,
                ["gen_tokens"] = n,
                ["depth"] = depth,
                // Where the last timed decode left the cache (depth + n + 1 with BOS): that decode really ran that deep.
                ["cache_positions_after_decode"] = session.Tokens.Count,
                ["prefill_tokens_per_s"] = p / ppMedian,
                ["decode_tokens_per_s"] = n / tgMedian,
                ["ttft_ms"] = ppMedian * 1e3,
                ["total_s"] = ppMedian + tgMedian,
                ["kv_bytes_per_token"] = info.KvBytesPerToken,
                ["kv_bytes_per_session"] = info.KvBytesPerToken * (p + n),
                ["prefill_s_runs"] = ToArray(ppTimes),
                ["decode_s_runs"] = ToArray(tgTimes),
            };
            if (bandwidth is double bw)
            {
                double bound = bw / readBytes;
                run["bytes_read_per_decode_token"] = readBytes;
                run["bandwidth_bound_decode_tokens_per_s"] = bound;
                run["decode_bandwidth_ratio"] = n / tgMedian / bound;
                run["decode_bandwidth_ratio_paired"] = BenchRunner.Median(
                    tgTimes.Select((t, i) => n / t / (roundBandwidths[i] / readBytes)).ToList());
                run["memory_bandwidth_runs"] = ToArray(roundBandwidths);
            }
            runArray.Add(run);
        }

        table.WriteLine();
        tableRows.Write(table);
        // Top level: the first run (llama-bench's -p 128 -n 64 by default), then the shared facts and all runs.
        foreach (var (key, value) in (JsonObject)runArray[0]!)
            if (!key.EndsWith("_runs", StringComparison.Ordinal)) result[key] = value?.DeepClone();
        result["weight_bytes_per_token"] = info.WeightBytesPerToken;
        if (bandwidth is double b)
        {
            result["memory_bandwidth_bytes_per_s"] = b;
            long? lastLevelCache = MemoryBandwidth.LastLevelCacheBytes();
            bool fitsInCache = lastLevelCache >= info.WeightBytesPerToken;
            result["last_level_cache_bytes"] = lastLevelCache;
            result["bandwidth_bound_note"] = BoundNote(fitsInCache, depth);
            double read = (double)result["bytes_read_per_decode_token"]!;
            double bound = b / read;
            double ratio = (double)result["decode_tokens_per_s"]! / bound;
            table.WriteLine($"bandwidth limit for decode (a floor of the true limit: the probe's streaming read is a lower bound on the memory's bandwidth): " +
                            $"{b / 1e9:F2} GB/s / {read / 1e6:F1} MB per token{(depth > 0 ? $" (weights and the cache's rows at d{depth})" : "")} = {bound:F1} tok/s; " +
                            $"measured tg{runs[0].Item2}{(depth > 0 ? $" @ d{depth}" : "")} {(double)result["decode_tokens_per_s"]!:F1} tok/s = {ratio * 100:F0}% of it" +
                            (ratio > 1 ? " (above 100%: decode read faster than the probe)" : ""));
            table.WriteLine($"paired (each decode run over a probe of {RoundProbeBytes >> 20} MiB just before it, median of runs): " +
                            $"{(double)result["decode_bandwidth_ratio_paired"]! * 100:F0}%");
            if (fitsInCache)
                table.WriteLine($"the weights read per token ({info.WeightBytesPerToken / 1e6:F1} MB) fit in the {lastLevelCache / 1048576.0:F0} MiB last-level cache: " +
                                "decode may read them from the cache, not from memory, and beat the memory bound");
        }
        table.WriteLine($"KV cache: {info.KvBytesPerToken:N0} bytes/token ({info.KvTypesText}), {info.KvBytesPerToken * (runs[0].Item1 + runs[0].Item2):N0} bytes for {runs[0].Item1}+{runs[0].Item2} tokens" +
                        (depth > 0 ? $", {info.KvBytesPerToken * (depth + runs[0].Item2):N0} bytes at d{depth}+{runs[0].Item2}" : ""));
        result["runs"] = runArray;
        return result;
    }

    /// <summary>Positions a decode run of <paramref name="n"/> tokens at <paramref name="depth"/> needs: its prompt (at least BOS), the n tokens, the last sampled one.</summary>
    private static int DecodeContext(int depth, int n) => Math.Max(depth, 1) + n + 1;

    /// <summary>Bytes the probe before each decode run streams: far above any last-level cache, and quick to allocate.</summary>
    private const long RoundProbeBytes = 256L << 20;

    /// <summary>
    /// <see cref="MemoryBandwidth.Measure"/>, with the probe's buffer kept out of the engine's peak working set (the peak
    /// before it still counts).
    /// </summary>
    private static double ProbeBandwidth(LlmModel model, long bytes, int passes)
    {
        long peakBefore = PeakMemory.Peak();
        double bandwidth = MemoryBandwidth.Measure(model.Pool, bytes, passes);
        PeakMemory.ResetKeepingPeak(peakBefore);
        return bandwidth;
    }

    /// <summary>What decode_bandwidth_ratio compares with, for the JSON: the bound is a floor, so a ratio above 1 is not an error.</summary>
    private static string BoundNote(bool fitsInCache, int depth) =>
        "bandwidth_bound_decode_tokens_per_s = memory_bandwidth_bytes_per_s / bytes_read_per_decode_token (" +
        (depth > 0 ? "weight_bytes_per_token plus kv_bytes_per_token x the mean cached positions over the decode, from depth on" : "weight_bytes_per_token") +
        "), where the bandwidth is a streaming-read probe " +
        "(best of 5 passes over 512 MiB): a lower bound on what memory delivers, so the bound is a floor and decode_bandwidth_ratio may exceed 1; " +
        "decode_bandwidth_ratio_paired divides each decode run by a probe (256 MiB, best of 3, memory_bandwidth_runs) taken just before it and is the median over runs" +
        (fitsInCache ? "; here the weights read per token fit in the last-level cache, so decode need not read them from memory at all" : "");

    /// <summary>
    /// Runs <paramref name="run"/> until <paramref name="seconds"/> have passed (at least twice): .NET compiles hot
    /// methods again with full optimization (tier 1, dynamic PGO) only after they have run for a while, so one short
    /// warm-up run still measures partly unoptimized code (seen as first runs 3-5x slower than the rest).
    /// </summary>
    internal static void WarmUp(double seconds, Action run)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 2 || clock.Elapsed.TotalSeconds < seconds; i++) run();
    }

    /// <summary>Seconds to prefill <paramref name="prompt"/> into an empty cache (logits of the last token included).</summary>
    private static double Prefill(InferenceSession session, int[] prompt)
    {
        session.Reset();
        foreach (var _ in session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 1, StopAtEndOfGeneration = false })) { }
        return session.LastStats!.PrefillTime.TotalSeconds;
    }

    /// <summary>Seconds for <paramref name="n"/> single-token decode steps after <paramref name="prompt"/> (BOS, or the depth's tokens), its prefill not counted.</summary>
    private static double Decode(InferenceSession session, int[] prompt, int n)
    {
        session.Reset();
        foreach (var _ in session.GenerateTokens(prompt, new GenerationOptions { MaxTokens = n + 1, StopAtEndOfGeneration = false })) { }
        var stats = session.LastStats!;
        if (stats.GeneratedTokens != n + 1) throw new InvalidOperationException($"expected {n + 1} generated tokens, got {stats.GeneratedTokens}");
        return stats.DecodeTime.TotalSeconds;
    }

    private static JsonArray ToArray(IEnumerable<double> xs) => new(xs.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
}
