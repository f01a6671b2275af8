namespace KvSharp.Engine;

/// <summary>
/// Everything an inspector shows about an engine at one moment between two steps: the model's KV arithmetic, the
/// block pool cell by cell, the sequences with their block tables, the prefix cache as a tree, and the running
/// totals, and the KV tiers below RAM if the engine has any. Taken by <see cref="LlmEngine.Inspect"/>; its numbers are the engine's metrics at <see cref="Step"/>.
/// </summary>
/// <param name="Step">Steps the engine has run (<see cref="EngineMetrics.Steps"/>) when this was taken.</param>
/// <param name="Changes">The engine's change counter (<see cref="LlmEngine.Changes"/>): equal values, equal state.</param>
/// <param name="TakenAt">Wall-clock time of the snapshot, so a reader can turn totals into rates.</param>
/// <param name="Tiers">The prefix cache's tiers below RAM, fastest first (<see cref="EngineOptions.KvTiers"/>); empty without.</param>
public sealed record EngineSnapshotDetail(
    long Step,
    long Changes,
    DateTimeOffset TakenAt,
    EngineSnapshotModel Model,
    EngineSnapshotBlocks Blocks,
    IReadOnlyList<EngineSnapshotSequence> Sequences,
    IReadOnlyList<EngineSnapshotPrefixNode> PrefixTree,
    EngineSnapshotCounters Counters,
    IReadOnlyList<EngineSnapshotTier> Tiers);
