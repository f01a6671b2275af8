namespace KvSharp.Cache;

/// <summary>
/// Asks the memory system for a head's first key and value rows before the attention that reads them starts.
/// Decode attention is many short items (one sequence's head, tens of positions each) whose rows lie in a few 4 KiB
/// runs: the hardware prefetcher learns each run only after its first misses, so an item spends most of its time
/// waiting. The forward pass announces the item a thread will run next (<see cref="Models.IKvStore.Prefetch"/>), and
/// its rows arrive while the current one computes; which bytes of a row are asked for is the element type's choice
/// (<see cref="Tensors.IKvElement{TSelf}.Prefetch"/>). Only a hint: it changes no result, and is skipped where the CPU
/// has no prefetch instruction.
/// </summary>
public static class KvPrefetch
{
    /// <summary>
    /// Positions announced per item: enough to cover a short context (the case the hint is for), small enough
    /// (32 KiB of F32 rows at head_dim 64) that the lines are still in L2 when the item runs.
    /// </summary>
    public const int Positions = 64;

    /// <summary>
    /// Key rows announced per item of paged attention, whose tiles ask for their later rows a few at a time as they
    /// compute (<see cref="Attention.TileAhead{TKey, TValue}"/>): the next item's first 64 key and value rows in one burst
    /// (32 KiB of F32) stalled the item running meanwhile, 1.3-1.4x slower decode attention at 16 sequences of 64
    /// positions (`paged-attention` in bench/KvSharp.Benchmarks, one or two threads); 16 key rows were as fast as none or a little faster.
    /// </summary>
    public const int PagedKeyRows = 16;
}
