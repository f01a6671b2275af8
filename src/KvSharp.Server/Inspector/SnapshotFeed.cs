using System.Diagnostics;
using System.Text.Json;
using KvSharp.Engine;

namespace KvSharp.Server.Inspector;

/// <summary>
/// The snapshots the inspector page streams, shared by every open page: a new one is taken only when the engine's
/// state changed (<see cref="LlmEngine.Changes"/>: at most one per step) and no more often than
/// <see cref="MinInterval"/>, however many pages are open; each is serialised once.
/// </summary>
internal sealed class SnapshotFeed(LlmEngine engine)
{
    /// <summary>At most ten snapshots a second: enough to watch, cheap enough not to slow decoding.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private FeedSnapshot? _latest;

    /// <summary>The latest snapshot, taking a new one if the engine changed since and the last is old enough.</summary>
    public FeedSnapshot Latest()
    {
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            if (_latest is { } last && (last.Changes == engine.Changes || Stopwatch.GetElapsedTime(last.TakenAt, now) < MinInterval)) return last;
            var snapshot = engine.Inspect();
            _latest = new FeedSnapshot(snapshot.Changes, now, JsonSerializer.SerializeToUtf8Bytes(snapshot, InspectorJson.Default.EngineSnapshotDetail));
            return _latest;
        }
    }
}

/// <param name="Changes">The engine's change count the snapshot was taken at.</param>
/// <param name="TakenAt">A Stopwatch timestamp.</param>
/// <param name="Json">The snapshot as /v1/kv/snapshot writes it.</param>
internal sealed record FeedSnapshot(long Changes, long TakenAt, byte[] Json);
