using System.Diagnostics;
using System.Text.Json.Nodes;
using KvSharp.Cache.Tiers;
using KvSharp.Engine;
using KvSharp.Redis;

namespace KvSharp.Cli.Bench;

/// <summary>
/// Time to first token of a request whose long prefix (--prompt-tokens, default 2,000) was computed before, served
/// four ways: from the prefix cache in RAM, fetched back from the disk tier, fetched back from the Redis tier (an
/// embedded Garnet server unless --redis HOST:PORT), and recomputed (no prefix caching). For the tiers the prefix is
/// first pushed out of RAM by two other prompts of the same length in a pool that holds one (the first leaves the
/// prefix's head block, released last, which the second takes), so every one of its blocks comes back from the tier.
/// Each figure is the median of --repetitions runs (default 3).
/// </summary>
internal static class TiersScenario
{
    public static JsonObject Run(BenchSettings s, BenchModelInfo info, BenchLog log, TextWriter table)
    {
        int prefix = s.PromptTokens ?? 2000, reps = s.Repetitions ?? 3;
        info.CheckFits(prefix + 1, "--prompt-tokens + 1");
        var model = info.Model;
        EngineBench.WarmUp(s, model, log, Math.Min(info.ContextLength, prefix + 1));
        var shared = EngineBench.Request(model, prefix, 1, seed: 11);
        EngineRequest[] others = [EngineBench.Request(model, prefix, 1, seed: 12), EngineBench.Request(model, prefix, 1, seed: 13)];

        double recompute = Median(reps, () =>
        {
            using var engine = Engine(s, info, prefix, prefixCaching: false, tiers: null);
            return Ttft(engine, shared);
        }, log, "recompute");
        double ram;
        using (var engine = Engine(s, info, prefix, prefixCaching: true, tiers: null))
        {
            Ttft(engine, shared);
            ram = Median(reps, () => Ttft(engine, shared), log, "ram");
        }

        string directory = Directory.CreateTempSubdirectory("kvsharp-bench-tiers-").FullName;
        double disk, redis;
        try
        {
            disk = FromTier(s, info, prefix, new DiskKvTier(directory, 64L << 30), shared, others, reps, log);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
        using (var garnet = s.Redis == null ? new EmbeddedGarnet(memory: "4g") : null)
            redis = FromTier(s, info, prefix, new RedisKvTier(s.Redis ?? garnet!.Endpoint), shared, others, reps, log);
        log.EndProgress();

        var t = new BenchTable("prefix from", "TTFT ms", "vs recompute");
        foreach (var (name, ms) in new[] { ("RAM", ram), ("disk", disk), ($"Redis ({(s.Redis ?? "embedded Garnet")})", redis), ("recompute", recompute) })
            t.Add(name, $"{ms:F1}", new Ratio(recompute, ms).Text("F1"));
        table.WriteLine();
        t.Write(table);
        var result = info.Describe("tiers");
        result["prefix_tokens"] = prefix;
        result["block_size"] = s.BlockSize;
        result["repetitions"] = reps;
        result["redis"] = s.Redis ?? "embedded garnet";
        result["ttft_ms_ram"] = ram;
        result["ttft_ms_disk"] = disk;
        result["ttft_ms_redis"] = redis;
        result["ttft_ms_recompute"] = recompute;
        result["disk_speedup"] = new Ratio(recompute, disk).Json;
        result["redis_speedup"] = new Ratio(recompute, redis).Json;
        return result;
    }

    /// <summary>Median TTFT of the shared prefix fetched back from <paramref name="tier"/> after other prompts pushed it out of RAM.</summary>
    private static double FromTier(BenchSettings s, BenchModelInfo info, int prefix, IKvBlockTier tier, EngineRequest shared, EngineRequest[] others, int reps, BenchLog log)
    {
        using var tiers = new KvTiers([tier], new KvTierOptions { FetchDeadline = TimeSpan.FromSeconds(10), WriteQueueBlocks = 4096 }, ownsTiers: true);
        using var engine = Engine(s, info, prefix, prefixCaching: true, tiers);
        Ttft(engine, shared);
        return Median(reps, () =>
        {
            foreach (var other in others) Ttft(engine, other); // evict the shared prefix's blocks, which go down to the tier
            tiers.FlushAsync().GetAwaiter().GetResult();
            long before = engine.PrefixCache.TierHitTokens, hitsBefore = engine.PrefixCache.HitTokens;
            double ms = Ttft(engine, shared);
            // At most a block's rows from RAM: the other prompts start with the same BOS row, and a hit ends at a token.
            long fromTier = engine.PrefixCache.TierHitTokens - before, fromRam = engine.PrefixCache.HitTokens - hitsBefore - fromTier;
            if (fromTier == 0 || fromRam > s.BlockSize)
                throw new InvalidOperationException($"the prefix did not come back (whole) from the {tier.Name} tier (stats: {Describe(tiers.Stats[0])}); nothing to measure");
            return ms;
        }, log, tier.Name);
    }

    private static string Describe(KvTierStats s) => $"hits {s.Hits}, misses {s.Misses}, refused {s.Refused}, timeouts {s.Timeouts}, errors {s.Errors}, writes {s.Writes}";

    /// <summary>An engine whose pool holds one request of <paramref name="prefix"/> + 1 tokens and a block, so each request evicts the last one's blocks.</summary>
    private static LlmEngine Engine(BenchSettings s, BenchModelInfo info, int prefix, bool prefixCaching, KvTiers? tiers)
    {
        long blocks = (prefix + 1 + s.BlockSize - 1) / s.BlockSize + 1;
        return new LlmEngine(info.Model, EngineBench.Options(s, info.Model.Config, prefix + 1, blocks * s.BlockSize * info.KvBytesPerToken, prefixCaching) with { KvTiers = tiers });
    }

    private static double Ttft(LlmEngine engine, EngineRequest request)
    {
        var handle = engine.Submit(request);
        engine.RunUntilIdle();
        if (handle.Status != RequestStatus.Finished) throw new InvalidOperationException($"the benchmark request ended {handle.Status}: {handle.Error}");
        return handle.TimeToFirstToken!.Value.TotalMilliseconds;
    }

    private static double Median(int reps, Func<double> measure, BenchLog log, string what)
    {
        var values = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            log.Progress($"{what}: run {i + 1} of {reps}");
            values[i] = measure();
        }
        Array.Sort(values);
        return reps % 2 == 1 ? values[reps / 2] : (values[reps / 2 - 1] + values[reps / 2]) / 2;
    }
}
