namespace KvSharp.Engine;

/// <summary>
/// The scheduler's lock, which a step holds from its start to its end, and the cancellations that arrive while it is
/// held. A cancel never waits for it: <see cref="Cancelled"/> retires cancelled sequences at once when the lock is
/// free, and otherwise leaves a mark that the holder finds as it lets go (<see cref="Scope.Dispose"/>), so a request
/// cancelled during a step is retired, and its blocks freed, as that step ends. No mark is missed: a failed TryEnter
/// means someone held the lock after the mark was made, and every holder looks for marks after releasing it.
/// </summary>
internal sealed class SchedulerLock(Action retireCancelled)
{
    private readonly Lock _gate = new();
    private int _marks;

    /// <summary>Takes the lock (waiting for a step in progress); dispose the scope to release it.</summary>
    public Scope Enter()
    {
        _gate.Enter();
        return new Scope(this);
    }

    /// <summary>A request was cancelled: retires it now if no one holds the lock, else when the holder lets go.</summary>
    public void Cancelled()
    {
        Interlocked.Increment(ref _marks);
        RetireMarked();
    }

    private void Exit()
    {
        _gate.Exit();
        RetireMarked();
    }

    private void RetireMarked()
    {
        // Not on a thread that still holds the lock (a cancel from inside a step, or a nested scope): the sequences the
        // step is working on must not change under it, and that holder's own exit comes back here.
        while (Volatile.Read(ref _marks) > 0 && !_gate.IsHeldByCurrentThread && _gate.TryEnter())
        {
            try
            {
                Interlocked.Exchange(ref _marks, 0);
                retireCancelled();
            }
            finally
            {
                _gate.Exit();
            }
        }
    }

    public readonly struct Scope(SchedulerLock owner) : IDisposable
    {
        public void Dispose() => owner.Exit();
    }
}
