namespace KvSharp.Engine;

/// <summary>The engine's running totals and gauges at the snapshot's step (the same numbers as <see cref="EngineMetrics"/>).</summary>
/// <param name="PrefixHitRate">Hit tokens / queried tokens (0 before any lookup).</param>
/// <param name="TokensPerSecond">Tokens computed per second in the last step.</param>
/// <param name="Waiting">Sequences waiting: the queue (new and preempted) and the requests no step has taken from the inbox yet.</param>
public sealed record EngineSnapshotCounters(
    long Steps,
    long GeneratedTokens,
    long ComputedTokens,
    long PrefixQueriedTokens,
    long PrefixHitTokens,
    double PrefixHitRate,
    long Preemptions,
    double TokensPerSecond,
    int Running,
    int Waiting);
