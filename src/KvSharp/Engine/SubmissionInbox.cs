using System.Collections.Concurrent;

namespace KvSharp.Engine;

/// <summary>
/// Where submitted requests wait until a step takes them (vLLM's and SGLang's way): <see cref="Add"/> never waits
/// for a step in progress, the step drains the inbox at its start under the scheduler's lock, in submission order.
/// A request cancelled before it was taken is withdrawn here (<see cref="Withdraw"/>) and never reaches the scheduler.
/// Also what the engine's loop sleeps on when idle: every <see cref="Add"/> wakes it.
/// </summary>
internal sealed class SubmissionInbox
{
    private const int Queued = 0, Taken = 1, Withdrawn = 2;

    private readonly ConcurrentQueue<EngineSequence> _queue = new();
    // Released on every arrival: a step that found the inbox empty and then sleeps wakes for one that came after it
    // looked. A count above one only costs a spare empty step.
    private readonly SemaphoreSlim _arrived = new(0);
    private long _accepted, _drained;

    public void Add(EngineSequence seq)
    {
        // Counted before it can be taken, so the count of those not yet taken never goes below zero.
        Interlocked.Increment(ref _accepted);
        _queue.Enqueue(seq);
        if (_arrived.CurrentCount == 0) _arrived.Release();
    }

    /// <summary>Takes the oldest request not withdrawn; only the scheduler calls this, under its lock.</summary>
    public bool TryTake(out EngineSequence seq)
    {
        while (_queue.TryDequeue(out seq!))
        {
            if (Interlocked.CompareExchange(ref seq.InboxState, Taken, Queued) != Queued) continue;
            Volatile.Write(ref _drained, _drained + 1);
            return true;
        }
        return false;
    }

    /// <summary>Withdraws a request the scheduler has not taken yet; false once it has (it is the scheduler's to retire).</summary>
    public bool Withdraw(EngineSequence seq)
    {
        if (Interlocked.CompareExchange(ref seq.InboxState, Withdrawn, Queued) != Queued) return false;
        Interlocked.Decrement(ref _accepted);
        return true;
    }

    /// <summary>Requests taken so far (the scheduler publishes this with its counts, see <see cref="Pending"/>).</summary>
    public long Drained => Volatile.Read(ref _drained);

    /// <summary>
    /// Requests not taken as of now, given how many were taken when the counts were published: those taken since then
    /// count too, as the published counts do not have them yet; never negative.
    /// </summary>
    public int Pending(long drainedWhenPublished) => (int)Math.Max(0, Volatile.Read(ref _accepted) - drainedWhenPublished);

    /// <summary>The requests not taken yet, for the inspector (a moment's view: others may arrive or be withdrawn).</summary>
    public IEnumerable<EngineSequence> NotTaken => _queue.Where(static s => Volatile.Read(ref s.InboxState) == Queued);

    /// <summary>Completes when a request has arrived since the last wait returned (or at once if one is pending).</summary>
    public Task WaitAsync(CancellationToken cancellation) => _arrived.WaitAsync(cancellation);

    /// <summary>Drops every request not taken (the engine is disposed; they hold no blocks).</summary>
    public void Clear()
    {
        while (TryTake(out _)) { }
    }
}
