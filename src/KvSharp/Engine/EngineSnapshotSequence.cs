namespace KvSharp.Engine;

/// <summary>
/// One sequence the scheduler holds (a sample of a request). <see cref="State"/>: <c>queued</c> (waiting to be admitted),
/// <c>preempted</c> (gave up its blocks for lack of room; waits to be recomputed), <c>prefill</c> (its prompt is being
/// computed, chunk by chunk) or <c>decoding</c>.
/// </summary>
/// <param name="RequestId">The engine's id of the request (<see cref="RequestHandle.Id"/>).</param>
/// <param name="Sample">Which parallel sample of the request.</param>
/// <param name="CachedTokens">Prompt tokens adopted from the prefix cache.</param>
/// <param name="KvLength">Positions whose K/V are computed.</param>
/// <param name="BlockTable">The blocks holding those positions, in order (empty while queued or preempted; -1 for a
/// block a window freed; under H2O the blocks of its heads' slots, in slot order, not positions').</param>
/// <param name="TimeToFirstTokenMs">From submission to the request's first token; null before it.</param>
/// <param name="AgeMs">Time since submission.</param>
public sealed record EngineSnapshotSequence(
    long RequestId,
    int Sample,
    string State,
    int PromptTokens,
    int CachedTokens,
    int GeneratedTokens,
    int KvLength,
    int Preemptions,
    IReadOnlyList<int> BlockTable,
    double? TimeToFirstTokenMs,
    double AgeMs);
