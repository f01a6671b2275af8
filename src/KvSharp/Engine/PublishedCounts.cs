namespace KvSharp.Engine;

/// <summary>
/// What a step leaves behind for observers that must not wait for the next one (<see cref="LlmEngine.Snapshot"/>,
/// the /metrics gauges): written once per step by the thread that holds the scheduler's lock, read from any thread
/// without a lock and without allocating. A sequence lock: the writer makes the version odd while it writes, and a
/// reader that saw an odd or changed version reads again, so it never returns counts from two different steps; it
/// retries only across the few stores of one write, never for a step.
/// </summary>
internal sealed class PublishedCounts
{
    private long _version;
    private int _running, _waiting, _usedBlocks;
    private long _filledPositions, _drained;

    /// <param name="drained">Requests the scheduler had taken from its inbox when these counts were taken.</param>
    public void Write(int running, int waiting, int usedBlocks, long filledPositions, long drained)
    {
        // Interlocked increments are full fences: no store below moves above the first or below the second.
        Interlocked.Increment(ref _version);
        Volatile.Write(ref _running, running);
        Volatile.Write(ref _waiting, waiting);
        Volatile.Write(ref _usedBlocks, usedBlocks);
        Volatile.Write(ref _filledPositions, filledPositions);
        Volatile.Write(ref _drained, drained);
        Interlocked.Increment(ref _version);
    }

    /// <summary>The counts of one write, and how many requests the scheduler had drained from its inbox by then.</summary>
    public (EngineSnapshot Counts, long Drained) Read()
    {
        var spin = new SpinWait();
        while (true)
        {
            long version = Volatile.Read(ref _version);
            if ((version & 1) == 0)
            {
                var counts = new EngineSnapshot(Volatile.Read(ref _running), Volatile.Read(ref _waiting), Volatile.Read(ref _usedBlocks),
                    Volatile.Read(ref _filledPositions));
                long drained = Volatile.Read(ref _drained);
                // The field loads above must complete before the version is read again.
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _version) == version) return (counts, drained);
            }
            spin.SpinOnce();
        }
    }
}
