using System.Diagnostics.Metrics;

namespace KvSharp.Cache.Tiers;

/// <summary>
/// Each tier's totals (<see cref="KvTierStats"/>) as instruments of a meter, one series per tier (tag "tier"):
/// kvsharp.kv_tier.hits, .misses, .refused, .timeouts, .errors, .bytes_in, .bytes_out, .writes, .writes_dropped, and
/// the histogram kvsharp.kv_tier.fetch_latency (seconds per lookup, hit or miss).
/// </summary>
public static class KvTierMetrics
{
    public static void Register(Meter meter, KvTiers tiers)
    {
        ArgumentNullException.ThrowIfNull(meter);
        ArgumentNullException.ThrowIfNull(tiers);
        void Counter(string name, string unit, string description, Func<KvTierStats, long> read) =>
            meter.CreateObservableCounter($"kvsharp.kv_tier.{name}",
                () => tiers.Stats.Select(s => new Measurement<long>(read(s), new KeyValuePair<string, object?>("tier", s.Tier))), unit, description);
        Counter("hits", "{block}", "prefix blocks fetched back from a tier instead of recomputed", s => s.Hits);
        Counter("misses", "{block}", "lookups a tier did not hold", s => s.Misses);
        Counter("refused", "{block}", "values that failed their checksum or were not the block looked up (recomputed)", s => s.Refused);
        Counter("timeouts", "{block}", "lookups past the fetch deadline (recomputed)", s => s.Timeouts);
        Counter("errors", "{operation}", "tier reads and writes that failed (a dead server, a full disk)", s => s.Errors);
        Counter("bytes_in", "By", "bytes fetched from a tier", s => s.BytesIn);
        Counter("bytes_out", "By", "bytes written to a tier", s => s.BytesOut);
        Counter("writes", "{block}", "evicted blocks written to a tier", s => s.Writes);
        meter.CreateObservableCounter("kvsharp.kv_tier.writes_dropped", () => tiers.DroppedWrites, "{block}", "evicted blocks not written because the write queue was full");
        var latency = meter.CreateHistogram<double>("kvsharp.kv_tier.fetch_latency", "s", "time of one lookup in a tier, hit or miss",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] });
        tiers.FetchTimed = (stats, time) => latency.Record(time.TotalSeconds, new KeyValuePair<string, object?>("tier", stats.Tier));
    }
}
