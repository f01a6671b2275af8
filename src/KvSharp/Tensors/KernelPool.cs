using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace KvSharp.Tensors;

/// <summary>One unit of a parallel-for: <see cref="Execute"/> is called once for every index of the range.</summary>
public interface IParallelWork
{
    void Execute(int index);
}

/// <summary>
/// A fixed set of worker threads running parallel-for loops over index ranges, built for many short kernels per
/// token (a decode step runs ~10 matmuls per layer).
/// </summary>
/// <remarks>
/// <para>Design: <see cref="Run{TWork}"/> takes the work as a struct by reference, copies it to the caller's stack
/// and hands the workers a pointer to that copy plus a function pointer to <c>Execute&lt;TWork&gt;</c>, a generic
/// static method. Nothing is allocated per call: no Task, no delegate, no closure, no boxing. (A stack local never
/// moves, and the caller stays inside <see cref="Run{TWork}"/> until every worker is done with it, so the pointer
/// stays valid; the copy is written back to <c>work</c> at the end.)</para>
/// <para>Indices are claimed one at a time with an interlocked counter by the caller and the workers together, so
/// uneven items balance themselves; give each index a meaningful chunk of work (thousands of cycles or more).
/// Which thread runs which index is not deterministic, so kernels must make each index's result independent of that.
/// </para>
/// <para>Idle workers spin for <see cref="SpinTime"/> before blocking, so back-to-back kernels do not pay a thread
/// wake-up. One caller at a time: <see cref="Run{TWork}"/> is not reentrant and must not be called concurrently.
/// With <c>threads == 1</c> (or a single index) work runs inline on the calling thread.</para>
/// </remarks>
public sealed unsafe class KernelPool : IDisposable
{
    private readonly Thread[] _workers;
    private readonly object _gate = new();
    private readonly long _spinTicks;

    // The current Run. _claim packs (generation << 32 | next index): workers claim an index with a CAS that also
    // checks the generation, so a worker that wakes up late can never take an index of a later Run. The fields
    // below are written under a seqlock (_version odd while writing) and carry their generation, so a late worker
    // either reads the fields of the generation it claims from or gives up.
    private long _claim;
    private int _version;
    private int _fieldsGeneration;
    private void* _work;
    private delegate*<void*, int, void> _execute;
    private int _count;
    private int _done;
    private int _generation; // only the caller touches it
    private int _sleepers;
    private int _running;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _error;

    /// <param name="threads">Total threads including the caller's (1 = run inline).</param>
    public KernelPool(int threads) : this(threads, TimeSpan.FromMilliseconds(1)) { }

    /// <param name="threads">Total threads including the caller's (1 = run inline).</param>
    /// <param name="spinTime">How long an idle worker spins waiting for the next Run before it blocks.</param>
    public KernelPool(int threads, TimeSpan spinTime)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Threads = threads;
        SpinTime = spinTime;
        _spinTicks = (long)(spinTime.TotalSeconds * Stopwatch.Frequency);
        _workers = new Thread[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"KvSharp kernel {i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Threads that run work, the caller's included.</summary>
    public int Threads { get; }

    public TimeSpan SpinTime { get; }

    /// <summary>Calls <c>work.Execute(i)</c> for every i in [0, count), spread over the pool; returns when all are done.</summary>
    public void Run<TWork>(ref TWork work, int count) where TWork : struct, IParallelWork
    {
        if (count <= 0) return;
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_workers.Length == 0 || count == 1)
        {
            for (int i = 0; i < count; i++) work.Execute(i);
            return;
        }
        if (Interlocked.Exchange(ref _running, 1) != 0)
            throw new InvalidOperationException("KernelPool.Run was called while another Run is in progress (one caller at a time, no nesting)");
        try
        {
            TWork local = work;
            int gen = ++_generation;
            Interlocked.Increment(ref _version); // odd: fields being written
            _work = Unsafe.AsPointer(ref local);
            _execute = &Execute<TWork>;
            _count = count;
            _fieldsGeneration = gen;
            _done = 0;
            Interlocked.Increment(ref _version); // even: fields consistent
            Interlocked.Exchange(ref _claim, (long)gen << 32); // publish (full fence)
            if (Volatile.Read(ref _sleepers) > 0)
                lock (_gate) Monitor.PulseAll(_gate);

            Drain(gen, &Execute<TWork>, _work, count);

            // Wait for the items other threads claimed, not for the threads: a worker that wakes up late finds
            // nothing to claim and never holds this call up.
            SpinWait spin = default;
            while (Volatile.Read(ref _done) != count) spin.SpinOnce(sleep1Threshold: -1);
            work = local;
            if (_error is { } error)
            {
                _error = null;
                error.Throw();
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>
    /// <see cref="Run{TWork}(ref TWork, int)"/>, or every index on the calling thread where <paramref name="inline"/>:
    /// work too small to be worth handing to another core (a small matmul, a small model's decode attention).
    /// </summary>
    public void Run<TWork>(ref TWork work, int count, bool inline) where TWork : struct, IParallelWork
    {
        if (!inline)
        {
            Run(ref work, count);
            return;
        }
        for (int i = 0; i < count; i++) work.Execute(i);
    }

    private static void Execute<TWork>(void* work, int index) where TWork : struct, IParallelWork
        => Unsafe.AsRef<TWork>(work).Execute(index);

    private void Drain(int gen, delegate*<void*, int, void> execute, void* work, int count)
    {
        while (true)
        {
            long c = Volatile.Read(ref _claim);
            if ((int)(c >> 32) != gen) return;
            int i = (int)c;
            if (i >= count) return;
            if (Interlocked.CompareExchange(ref _claim, c + 1, c) != c) continue;
            try
            {
                execute(work, i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
            }
            Interlocked.Increment(ref _done);
        }
    }

    private void WorkerLoop()
    {
        int seen = 0;
        while (true)
        {
            long deadline = Stopwatch.GetTimestamp() + _spinTicks;
            int spins = 0;
            while (PublishedGeneration() == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() < deadline)
                {
                    // Spin, but let other runnable threads in now and then: on an oversubscribed machine a pure
                    // spin would steal the time slice the caller needs to publish the next Run.
                    if (++spins % 64 == 0) Thread.Yield();
                    else Thread.SpinWait(20);
                    continue;
                }
                lock (_gate)
                {
                    // Dekker-style handshake with Run: announce ourselves (full fence) before re-reading the
                    // generation; Run publishes the generation (full fence) before reading _sleepers.
                    Interlocked.Increment(ref _sleepers);
                    while (PublishedGeneration() == seen && !_disposed) Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            if (_disposed) return;
            int gen = PublishedGeneration();
            seen = gen;
            // Read the fields of that generation (seqlock); if the caller has moved on, skip it.
            int v1 = Volatile.Read(ref _version);
            if ((v1 & 1) != 0) continue;
            var execute = _execute;
            void* work = _work;
            int count = _count;
            int fieldsGen = _fieldsGeneration;
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref _version) != v1 || fieldsGen != gen) continue;
            Drain(gen, execute, work, count);
        }
    }

    private int PublishedGeneration() => (int)(Volatile.Read(ref _claim) >> 32);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _workers) t.Join();
    }
}
