namespace KvSharp.Engine;

/// <summary>
/// The block pool cell by cell. <see cref="Map"/> has one character per block, in block order:
/// <c>.</c> free, <c>u</c> in use by one sequence, <c>s</c> shared (refcount above 1), <c>c</c> cached (held by no
/// sequence, kept by the prefix cache; reusable on a hit, evicted when the pool runs short).
/// </summary>
/// <param name="InUse">Blocks held by exactly one sequence.</param>
/// <param name="Shared">Blocks held by more than one (forks, prefix hits); InUse + Shared is the pool's UsedBlocks.</param>
/// <param name="Cached">Blocks nobody holds that the prefix cache keeps (the pool's CachedBlocks).</param>
/// <param name="ExactRowsBytes">
/// KIVI only (0 otherwise): the rows not yet quantized that the sequences holding a cache keep beside the pool, at most
/// <see cref="KvSharp.Cache.KvElementFormat.ExactBytesPerSequence"/> each (what <c>KvCache.AllocatedBytes</c> counts).
/// </param>
/// <param name="ExactRowsReservedBytes">What the engine set aside from its budget for them (<see cref="EngineOptions.ExactRowsBytes"/>).</param>
public sealed record EngineSnapshotBlocks(
    int BlockSize,
    int Count,
    int Free,
    int InUse,
    int Shared,
    int Cached,
    long BytesPerBlock,
    long TotalBytes,
    long UsedBytes,
    string ElementType,
    string Map,
    long ExactRowsBytes,
    long ExactRowsReservedBytes)
{
    public const char FreeCell = '.', InUseCell = 'u', SharedCell = 's', CachedCell = 'c';
}
