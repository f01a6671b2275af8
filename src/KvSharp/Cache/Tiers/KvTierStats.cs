namespace KvSharp.Cache.Tiers;

/// <summary>What one tier has done so far (thread-safe counters; the engine's metrics read them).</summary>
public sealed class KvTierStats(string tier)
{
    private long _hits, _misses, _refused, _timeouts, _errors, _bytesIn, _bytesOut, _writes, _lookups, _fetchTicks;

    public string Tier { get; } = tier;
    /// <summary>Blocks fetched and adopted.</summary>
    public long Hits => Interlocked.Read(ref _hits);
    /// <summary>Lookups the tier did not hold.</summary>
    public long Misses => Interlocked.Read(ref _misses);
    /// <summary>Values refused: failed checksum, or not the block looked up (recomputed instead).</summary>
    public long Refused => Interlocked.Read(ref _refused);
    /// <summary>Lookups past the fetch deadline (recomputed instead).</summary>
    public long Timeouts => Interlocked.Read(ref _timeouts);
    /// <summary>Gets and puts that threw (a dead server, a full disk).</summary>
    public long Errors => Interlocked.Read(ref _errors);
    /// <summary>Bytes of values fetched, and written.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);
    public long BytesOut => Interlocked.Read(ref _bytesOut);
    /// <summary>Values written.</summary>
    public long Writes => Interlocked.Read(ref _writes);
    /// <summary>Lookups timed into <see cref="FetchTime"/>, whatever their outcome (so FetchTime / Lookups is the mean).</summary>
    public long Lookups => Interlocked.Read(ref _lookups);
    /// <summary>Time spent in lookups, hits and misses.</summary>
    public TimeSpan FetchTime => TimeSpan.FromTicks(Interlocked.Read(ref _fetchTicks));

    internal void Hit(long bytes)
    {
        Interlocked.Increment(ref _hits);
        Interlocked.Add(ref _bytesIn, bytes);
    }

    internal void Miss() => Interlocked.Increment(ref _misses);
    internal void Refuse(long bytes)
    {
        Interlocked.Increment(ref _refused);
        Interlocked.Add(ref _bytesIn, bytes);
    }

    internal void Timeout() => Interlocked.Increment(ref _timeouts);
    internal void Error() => Interlocked.Increment(ref _errors);
    internal void Wrote(long bytes)
    {
        Interlocked.Increment(ref _writes);
        Interlocked.Add(ref _bytesOut, bytes);
    }

    internal void Fetched(TimeSpan time)
    {
        Interlocked.Increment(ref _lookups);
        Interlocked.Add(ref _fetchTicks, time.Ticks);
    }
}
