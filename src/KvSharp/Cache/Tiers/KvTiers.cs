using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using KvSharp.Cache.Paged;

namespace KvSharp.Cache.Tiers;

/// <summary>
/// The tiers below a <see cref="PrefixCache"/>'s RAM, fastest first (disk, then Redis). When the pool evicts a cached
/// prefix block, its bytes are copied out at once (a memory copy, no I/O) and queued; a background writer stores them
/// in every tier. The queue is bounded and a full queue drops the block (counted in <see cref="DroppedWrites"/>), so
/// eviction, and the decode step behind it, never waits for a tier. A prefix lookup that misses RAM asks the tiers in
/// order, each within <see cref="KvTierOptions.FetchDeadline"/>; a miss, a timeout, an error or a value that fails its
/// checks (<see cref="KvTierBlock"/>) falls through to the next tier and finally to recomputing the block.
/// Disposing this stops the writer, and disposes the tiers only if it was told it owns them.
/// </summary>
public sealed class KvTiers : IDisposable
{
    private readonly IKvBlockTier[] _tiers;
    private readonly KvTierStats[] _stats;
    private readonly Channel<PendingWrite> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private readonly bool _ownsTiers;
    private long _queued, _written, _dropped;

    private readonly record struct PendingWrite(string Key, byte[] Buffer, int Length);

    /// <param name="ownsTiers">Dispose the tiers with this (else the caller does).</param>
    public KvTiers(IReadOnlyList<IKvBlockTier> tiers, KvTierOptions? options = null, bool ownsTiers = false)
    {
        _ownsTiers = ownsTiers;
        ArgumentNullException.ThrowIfNull(tiers);
        if (tiers.Count == 0) throw new ArgumentException("at least one tier is needed", nameof(tiers));
        Options = options ?? new KvTierOptions();
        Options.Validate();
        _tiers = [.. tiers];
        _stats = [.. _tiers.Select(t => new KvTierStats(t.Name))];
        _queue = Channel.CreateBounded<PendingWrite>(new BoundedChannelOptions(Options.WriteQueueBlocks) { SingleReader = true });
        _writer = Task.Run(WriteLoopAsync);
    }

    public KvTierOptions Options { get; }
    public IReadOnlyList<IKvBlockTier> Tiers => _tiers;
    /// <summary>Per tier, in the order of <see cref="Tiers"/>.</summary>
    public IReadOnlyList<KvTierStats> Stats => _stats;
    /// <summary>Evicted blocks not written because the queue was full.</summary>
    public long DroppedWrites => Interlocked.Read(ref _dropped);
    /// <summary>Evicted blocks queued and not yet written to every tier (the write queue's length).</summary>
    public long PendingWrites => Math.Max(0, Interlocked.Read(ref _queued) - Interlocked.Read(ref _written));
    /// <summary>Called after every lookup in a tier with its time (the engine's metrics record it).</summary>
    public Action<KvTierStats, TimeSpan>? FetchTimed { get; set; }

    /// <summary>
    /// Copies block <paramref name="block"/> of <paramref name="pool"/> out now and queues it for the tiers; false
    /// (and nothing kept) when the queue is full.
    /// </summary>
    internal bool TryQueue(KvTierBlock.Identity id, ReadOnlySpan<int> tokens, KvBlockPool pool, int block)
    {
        int blockBytes = checked((int)pool.BytesPerBlock), length = KvTierBlock.EncodedLength(tokens.Length, blockBytes);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        KvTierBlock.Encode(id, tokens, pool, block, buffer.AsSpan(0, length));
        Interlocked.Increment(ref _queued);
        if (_queue.Writer.TryWrite(new PendingWrite(KvTierBlock.Key(id), buffer, length))) return true;
        Interlocked.Increment(ref _dropped);
        Interlocked.Increment(ref _written);
        ArrayPool<byte>.Shared.Return(buffer);
        return false;
    }

    /// <summary>
    /// Looks the block up in each tier in turn and, at the first intact value that is exactly this block, copies it
    /// into <paramref name="block"/> of <paramref name="pool"/>. False: recompute it.
    /// </summary>
    internal bool TryFetch(KvTierBlock.Identity id, ReadOnlySpan<int> tokens, KvBlockPool pool, int block)
    {
        string key = KvTierBlock.Key(id);
        int blockBytes = checked((int)pool.BytesPerBlock);
        for (int i = 0; i < _tiers.Length; i++)
        {
            var stats = _stats[i];
            long start = Stopwatch.GetTimestamp();
            byte[]? value = Get(_tiers[i], key, stats);
            var time = Stopwatch.GetElapsedTime(start);
            stats.Fetched(time);
            FetchTimed?.Invoke(stats, time);
            if (value == null) continue;
            if (!KvTierBlock.TryDecode(value, id, tokens, blockBytes, out var bytes, out _, pool.ValuesAreKeys))
            {
                stats.Refuse(value.Length);
                continue;
            }
            pool.CopyBlockIn(bytes, block);
            stats.Hit(value.Length);
            return true;
        }
        return false;
    }

    private byte[]? Get(IKvBlockTier tier, string key, KvTierStats stats)
    {
        using var deadline = new CancellationTokenSource(Options.FetchDeadline);
        try
        {
            var task = tier.GetAsync(key, deadline.Token).AsTask();
            if (!task.Wait(Options.FetchDeadline))
            {
                stats.Timeout();
                // Observed later so an abandoned lookup that fails is not an unobserved exception.
                task.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                return null;
            }
            if (task.Result == null) stats.Miss();
            return task.Result;
        }
        catch (Exception)
        {
            // Whatever a tier throws (a dead server, a vanished file) is a miss: the block is recomputed.
            if (deadline.IsCancellationRequested) stats.Timeout();
            else stats.Error();
            return null;
        }
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            await foreach (var write in _queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    for (int i = 0; i < _tiers.Length; i++) await PutAsync(i, write).ConfigureAwait(false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(write.Buffer);
                    Interlocked.Increment(ref _written);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
    }

    private async Task PutAsync(int tier, PendingWrite write)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(Options.WriteTimeout);
        try
        {
            await _tiers[tier].PutAsync(write.Key, write.Buffer.AsMemory(0, write.Length), timeout.Token).ConfigureAwait(false);
            _stats[tier].Wrote(write.Length);
        }
        catch (Exception) when (!_stop.IsCancellationRequested)
        {
            // A tier that cannot take the block (a full disk, a dead server) loses it; the engine recomputes it later.
            _stats[tier].Error();
        }
    }

    /// <summary>Waits until every block queued so far has been written or dropped (tests, and an orderly shutdown).</summary>
    public async Task FlushAsync(CancellationToken cancellation = default)
    {
        while (Interlocked.Read(ref _written) < Interlocked.Read(ref _queued)) await Task.Delay(1, cancellation).ConfigureAwait(false);
    }

    public void Dispose()
    {
        // Blocks already queued get a short while to reach the tiers; then whatever is left is abandoned.
        _queue.Writer.TryComplete();
        if (!_writer.Wait(Options.WriteTimeout)) _stop.Cancel();
        _writer.Wait(Options.WriteTimeout);
        _stop.Dispose();
        if (_ownsTiers) foreach (var tier in _tiers) tier.Dispose();
    }
}
