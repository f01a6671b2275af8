using System.Diagnostics;
using KvSharp.Engine;

namespace KvSharp.Server.Inspector;

/// <summary>
/// The snapshots the inspector page streams, shared by every open page: a new one is taken only when the engine's
/// state changed (<see cref="LlmEngine.Changes"/>: at most one per step) and no more often than
/// <see cref="Interval"/> (<see cref="ServerOptions.InspectorInterval"/>), however many pages are open; each is
/// serialised once, whole and as its changes since the one before.
/// </summary>
internal sealed class SnapshotFeed(LlmEngine engine, TimeSpan interval)
{
    private readonly Lock _lock = new();
    private FeedSnapshot? _latest;
    private SnapshotParts? _parts;
    private int _readers;

    /// <summary>The shortest time between two snapshots, and how often a stream looks for a new one.</summary>
    public TimeSpan Interval => interval;

    /// <summary>Event streams open now (pages, or any other reader of /v1/kv/events).</summary>
    public int Readers => Volatile.Read(ref _readers);

    /// <summary>Counts an open stream until the returned value is disposed.</summary>
    public IDisposable OpenReader()
    {
        Interlocked.Increment(ref _readers);
        return new ReaderCount(this);
    }

    private sealed class ReaderCount(SnapshotFeed feed) : IDisposable
    {
        private int _closed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0) Interlocked.Decrement(ref feed._readers);
        }
    }

    /// <summary>The latest snapshot, taking a new one if the engine changed since and the last is old enough.</summary>
    public FeedSnapshot Latest()
    {
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            if (_latest is { } last && (last.Changes == engine.Changes || Stopwatch.GetElapsedTime(last.TakenAt, now) < interval)) return last;
            return TakeLocked(now);
        }
    }

    /// <summary>A new snapshot now, whatever the interval (a benchmark times this: Inspect and both serialisations).</summary>
    internal FeedSnapshot Take(long now)
    {
        lock (_lock) return TakeLocked(now);
    }

    private FeedSnapshot TakeLocked(long now)
    {
        var parts = new SnapshotParts(engine.Inspect());
        // Equal change counts, equal state: a delta against the same state would be empty, so the stream skips it anyway.
        byte[]? delta = _parts is { } before && before.Changes != parts.Changes ? parts.WriteDelta(before) : null;
        _latest = new FeedSnapshot(parts.Changes, now, parts.WriteFull(), delta, delta != null ? _parts!.Changes : -1);
        _parts = parts;
        return _latest;
    }
}

/// <param name="Changes">The engine's change count the snapshot was taken at.</param>
/// <param name="TakenAt">A Stopwatch timestamp.</param>
/// <param name="Json">The snapshot as /v1/kv/snapshot writes it.</param>
/// <param name="Delta">Its changes since the feed's previous snapshot (null for the first).</param>
/// <param name="Base">The previous snapshot's change count, which <paramref name="Delta"/> applies to (-1 without one).</param>
internal sealed record FeedSnapshot(long Changes, long TakenAt, byte[] Json, byte[]? Delta, long Base);
