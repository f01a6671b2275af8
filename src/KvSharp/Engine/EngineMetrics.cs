using System.Diagnostics.Metrics;
using KvSharp.Cache.Paged;

namespace KvSharp.Engine;

/// <summary>
/// The engine's measurements, published through System.Diagnostics.Metrics (meter "KvSharp.Engine") for any
/// listener (dotnet-counters, OpenTelemetry) and kept as plain totals for benchmarks and tests.
/// </summary>
public sealed class EngineMetrics : IDisposable
{
    public const string MeterName = "KvSharp.Engine";

    private readonly Meter _meter;
    private readonly Counter<long> _generated, _computed, _rejected;
    private readonly Histogram<double> _timeToFirstToken, _interTokenLatency;
    private readonly PrefixCache _prefixCache;
    private long _preemptionTotal, _generatedTotal, _computedTotal, _steps;
    private double _lastTokensPerSecond;

    internal EngineMetrics(LlmEngine engine)
    {
        _meter = new Meter(MeterName);
        var pool = engine.Pool;
        _prefixCache = engine.PrefixCache;
        _meter.CreateObservableGauge("kvsharp.kv.blocks.used", () => pool.UsedBlocks, "{block}", "KV blocks held by sequences");
        _meter.CreateObservableGauge("kvsharp.kv.blocks.cached", () => pool.CachedBlocks, "{block}", "free KV blocks still caching a prefix");
        _meter.CreateObservableGauge("kvsharp.kv.blocks.total", () => pool.BlockCount, "{block}", "KV blocks in the budget");
        _meter.CreateObservableGauge("kvsharp.kv.bytes.used", () => pool.UsedBlocks * pool.BytesPerBlock, "By", "KV bytes held by sequences");
        _meter.CreateObservableGauge("kvsharp.kv.bytes.total", () => pool.TotalBytes, "By", "KV budget in bytes");
        _meter.CreateObservableGauge("kvsharp.queue.length", () => engine.WaitingCount, "{sequence}", "sequences waiting to run");
        _meter.CreateObservableGauge("kvsharp.sequences.running", () => engine.RunningCount, "{sequence}", "sequences running");
        _meter.CreateObservableGauge("kvsharp.tokens_per_second", () => _lastTokensPerSecond, "{token}/s", "tokens computed per second in the last step");
        // The prefix cache keeps its own totals; the meter reads them.
        _meter.CreateObservableCounter("kvsharp.prefix_cache.queried_tokens", () => _prefixCache.QueriedTokens, "{token}", "prompt tokens looked up in the prefix cache");
        _meter.CreateObservableCounter("kvsharp.prefix_cache.hit_tokens", () => _prefixCache.HitTokens, "{token}", "prompt tokens found in the prefix cache");
        _meter.CreateObservableCounter("kvsharp.prefix_cache.evicted_blocks", () => _prefixCache.EvictedBlocks, "{block}", "cached prefix blocks given up to make room");
        if (_prefixCache.Tiers is { } tiers) KvSharp.Cache.Tiers.KvTierMetrics.Register(_meter, tiers);
        // Observed from the total, so the series exists (at 0) before the first preemption: dashboards and alerts see it.
        _meter.CreateObservableCounter("kvsharp.preemptions", () => Preemptions, "{sequence}", "sequences preempted for lack of KV blocks");
        _generated = _meter.CreateCounter<long>("kvsharp.tokens.generated", "{token}", "tokens sampled");
        _computed = _meter.CreateCounter<long>("kvsharp.tokens.computed", "{token}", "tokens run through the model");
        _rejected = _meter.CreateCounter<long>("kvsharp.requests.rejected", "{request}", "requests that can never fit");
        // Seconds, with buckets for what a CPU engine sees (a listener's defaults are meant for milliseconds).
        _timeToFirstToken = _meter.CreateHistogram<double>("kvsharp.request.time_to_first_token", "s",
            "time from submission to a request's first token", tags: null, advice: new InstrumentAdvice<double>
            {
                HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
            });
        _interTokenLatency = _meter.CreateHistogram<double>("kvsharp.request.inter_token_latency", "s",
            "time between two tokens of a sequence", tags: null, advice: new InstrumentAdvice<double>
            {
                HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
            });
    }

    /// <summary>This engine's meter (each engine has its own, all named <see cref="MeterName"/>).</summary>
    public Meter Meter => _meter;

    public long PrefixQueriedTokens => _prefixCache.QueriedTokens;
    public long PrefixHitTokens => _prefixCache.HitTokens;
    public long Preemptions => Interlocked.Read(ref _preemptionTotal);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTotal);
    public long ComputedTokens => Interlocked.Read(ref _computedTotal);
    public long Steps => Interlocked.Read(ref _steps);
    /// <summary>Tokens computed per second in the last step.</summary>
    public double TokensPerSecond => Volatile.Read(ref _lastTokensPerSecond);

    internal void Preempted() => Interlocked.Increment(ref _preemptionTotal);

    internal void Rejected() => _rejected.Add(1);

    /// <summary>A sequence produced a token at <paramref name="now"/> (a Stopwatch timestamp); its first one is its request's TTFT.</summary>
    internal void TokenProduced(RequestHandle handle, bool firstOfRequest, ref long lastTokenAt, long now)
    {
        if (firstOfRequest) _timeToFirstToken.Record(handle.TimeToFirstToken!.Value.TotalSeconds);
        else if (lastTokenAt != 0) _interTokenLatency.Record(System.Diagnostics.Stopwatch.GetElapsedTime(lastTokenAt, now).TotalSeconds);
        lastTokenAt = now;
    }

    internal void StepDone(int computed, int generated, TimeSpan elapsed)
    {
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _computedTotal, computed);
        Interlocked.Add(ref _generatedTotal, generated);
        _computed.Add(computed);
        _generated.Add(generated);
        if (elapsed > TimeSpan.Zero) _lastTokensPerSecond = computed / elapsed.TotalSeconds;
    }

    public void Dispose() => _meter.Dispose();
}
