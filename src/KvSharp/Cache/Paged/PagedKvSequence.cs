using System.Runtime.InteropServices;
using KvSharp.Attention;
using KvSharp.Cache.Policies;
using KvSharp.Models;
using KvSharp.Tensors;

namespace KvSharp.Cache.Paged;

/// <summary>
/// One sequence's keys and values in a <see cref="KvBlockPool"/>: a block table maps position p to block
/// table[p / BlockSize], slot p % BlockSize. Blocks shared with other sequences (forks, prefix-cache hits) or
/// published to the prefix cache are never written: the first write into one copies it (copy-on-write).
/// Under a score-based policy (H2O, SnapKV) the table addresses slots, not positions: each layer and KV head keeps its
/// held positions in slots of its own (<see cref="ScoredHeads"/>), slot s at block table[s / BlockSize], row
/// s % BlockSize, and reuses an evicted position's slot for a new one. Such a sequence takes blocks only when a step
/// needs more free slots (H2O: B + T at most) and frees none while it lives.
/// In a pool that keeps a model's local layers apart (<see cref="KvLayerGroups"/>), the sequence keeps a table per
/// group: the global layers' table is <see cref="BlockTable"/>, and each local group's table lets go of the blocks
/// before its layers' window (entries <see cref="PagedWindow.Freed"/>), so those layers hold about W / BlockSize + 2
/// blocks however long the sequence grows.
/// </summary>
public sealed class PagedKvSequence : IKvStore
{
    private readonly KvBlockPool _pool;
    private readonly List<int> _blocks = [];
    private bool _released;
    // Null for the full policy (its path stays as it was); else the window that frees blocks behind it.
    private readonly PagedWindow? _window;
    // Null unless a score-based policy holds each layer and head's positions in slots of its own.
    private readonly ScoredHeads? _scored;
    // Null unless the pool's rows do not stand alone (KIVI): the pending rows and headers kept outside the pool.
    private PagedExactRows? _exact;
    // Null unless the pool keeps local layers apart: each local group's table (group g at g - 1), blocks before the window freed.
    private readonly List<int>[]? _local;

    public int Length { get; private set; }
    public int MaxLength { get; }
    public IReadOnlyList<int> BlockTable => _blocks;
    public KvBlockPool Pool => _pool;
    /// <summary>
    /// Which positions the sequence keeps; under a window policy, table entries of freed blocks are -1; under a
    /// score-based one the table holds every head's slots, not positions in order.
    /// </summary>
    public KvCachePolicy Policy { get; } = KvCachePolicy.Full;
    /// <summary>Blocks the sequence holds now (a window policy's freed ones not counted).</summary>
    public int HeldBlocks
    {
        get
        {
            int held = 0;
            for (int g = 0; g < TableCount; g++) held += Table(g).Count(b => b != PagedWindow.Freed);
            return held;
        }
    }

    /// <summary>
    /// The block table of one of the pool's layer groups (<see cref="KvBlockPool.LayerGroups"/>): group 0 is
    /// <see cref="BlockTable"/>; a local group's entries before its window are <see cref="PagedWindow.Freed"/>.
    /// </summary>
    public IReadOnlyList<int> GroupTable(int group) => Table(group);

    private List<int> Table(int group) => group == 0 ? _blocks : _local![group - 1];

    /// <summary>Tables the sequence keeps, one per layer group: <see cref="Table"/>(0 ... TableCount - 1), looped by index (no enumerator in the step's path).</summary>
    private int TableCount => _local == null ? 1 : _local.Length + 1;

    /// <summary>The table that holds <paramref name="layer"/>'s rows.</summary>
    private ReadOnlySpan<int> TableOf(int layer) =>
        CollectionsMarshal.AsSpan(_local == null ? _blocks : Table(_pool.LayerGroups.GroupOf(layer)));

    public PagedKvSequence(KvBlockPool pool, int maxLength)
    {
        if (maxLength <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "context length must be positive");
        _pool = pool;
        MaxLength = maxLength;
        _exact = pool.Rows.NewExactRows();
        if (pool.LayerGroups.SplitsLocalLayers) _local = [.. Enumerable.Range(1, pool.LayerGroups.Count - 1).Select(_ => new List<int>())];
    }

    /// <summary>
    /// A sequence that keeps the positions <paramref name="policy"/> says: under a window, blocks wholly behind
    /// every coming query's window go back to the pool; under H2O or SnapKV, blocks hold every head's slots. <paramref name="rope"/> (<c>LlmModel.Rope</c>) is needed by policies with sinks. Such a sequence
    /// neither adopts nor publishes prefix-cache blocks (see <see cref="AdoptPrefix"/>).
    /// </summary>
    public PagedKvSequence(KvBlockPool pool, int maxLength, KvCachePolicy policy, RotaryEmbedding? rope = null) : this(pool, maxLength)
    {
        ArgumentNullException.ThrowIfNull(policy);
        PerLayerPositions.Refuse(pool.Config, policy, pool.Format);
        Policy = policy;
        // A window frees blocks and rewrites sink keys, a score-based policy reuses slots in place: a type that
        // quantizes rows in groups along positions (KIVI) can do neither, so the pair is refused rather than read wrongly.
        if (!policy.KeepsEverything && _exact != null)
            throw new NotSupportedException($"cache policy '{policy}' overwrites or frees rows in place, which {pool.Format.Name} quantizes in groups along positions; use full, or another KV type");
        if (policy.EvictsByScore) _scored = new ScoredHeads(pool.Config, policy, maxLength);
        else if (!policy.KeepsEverything) _window = new PagedWindow(pool, policy, maxLength, rope, () => CollectionsMarshal.AsSpan(_blocks));
    }

    /// <summary>
    /// Declares positions [Length, <paramref name="end"/>) one prompt: SnapKV compresses it once, when its last token
    /// has run, however the engine splits it into steps (unmarked, each step of several tokens is a prompt). Other
    /// policies ignore it.
    /// </summary>
    public void BeginPrompt(int end) => _scored?.MarkPrompt(Length, end);

    /// <summary>Blocks needed to hold <paramref name="length"/> positions.</summary>
    public int BlocksFor(int length) => (length + _pool.BlockSize - 1) / _pool.BlockSize;

    /// <summary>Starts the sequence with already-computed blocks (a <see cref="PrefixCache"/> hit): they are retained, not copied.</summary>
    public void AdoptPrefix(IReadOnlyList<int> blocks) => AdoptPrefix(blocks, blocks.Count * _pool.BlockSize);

    /// <summary>
    /// Starts the sequence with the first <paramref name="length"/> positions of already-computed blocks; the last block
    /// may hold only some of them (a hit that ends inside a block). They are retained, not copied: the shared partial
    /// block is copied on the first write after it, and the rows past <paramref name="length"/> are overwritten then.
    /// </summary>
    public void AdoptPrefix(IReadOnlyList<int> blocks, int length)
    {
        if (Length != 0 || _blocks.Count != 0) throw new InvalidOperationException("a prefix can only be adopted by an empty sequence");
        if (length < 0 || BlocksFor(length) != blocks.Count)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"{blocks.Count} blocks of {_pool.BlockSize} positions do not end at position {length}");
        if (length % _pool.BlockSize != 0 && !_pool.Format.RowsStandAlone)
            throw new InvalidOperationException($"KV format {_pool.Format.Name} quantizes rows in groups: part of a block cannot be adopted");
        // Past the window a position's keys and values depend on the window: a prefix computed with every position
        // in view is not this sequence's, nor is this one's any other sequence's.
        if (_window != null || _scored != null) throw new InvalidOperationException($"a sequence with cache policy '{Policy}' cannot share prefix-cache blocks");
        // A reader reads its newest rows exact; a shared prefix holds only codes (the exact rows stayed with the
        // sequence that computed them), so it would read them quantized where computing them reads them exact.
        if (_exact != null) throw new InvalidOperationException($"a sequence of {_pool.Format.Name} cannot share prefix-cache blocks: {ExactRowsReason}");
        if (_local != null) throw new InvalidOperationException("a sequence whose local layers are kept apart adopts a prefix with their blocks too");
        foreach (int b in blocks)
        {
            _pool.Retain(b);
            _blocks.Add(b);
        }
        Length = length;
    }

    /// <summary>
    /// Starts a sequence whose local layers are kept apart with already-computed blocks of every group: the global
    /// table's <paramref name="blocks"/> and each local group's table (<paramref name="local"/>[g - 1], as many
    /// entries, <see cref="PagedWindow.Freed"/> before <see cref="KvBlockPool.FirstLocalBlock"/>(<paramref name="length"/>)). They
    /// are retained, not copied; the last block of each may hold only some of them (a hit that ends inside a block),
    /// copied on the first write after it.
    /// </summary>
    public void AdoptPrefix(IReadOnlyList<int> blocks, IReadOnlyList<int>[] local, int length)
    {
        if (_local == null) throw new InvalidOperationException("only a sequence whose local layers are kept apart adopts local blocks");
        if (Length != 0 || _blocks.Count != 0) throw new InvalidOperationException("a prefix can only be adopted by an empty sequence");
        if (length < 0 || BlocksFor(length) != blocks.Count || local.Length != _local.Length || local.Any(t => t.Count != blocks.Count))
            throw new ArgumentOutOfRangeException(nameof(length), length, $"{blocks.Count} blocks of {_pool.BlockSize} positions in every group do not end at position {length}");
        int first = _pool.FirstLocalBlock(length);
        for (int g = 0; g < local.Length; g++)
            for (int i = first; i < local[g].Count; i++)
                if (local[g][i] == PagedWindow.Freed) throw new ArgumentException($"local group {g + 1} lacks block {i}, which the window at position {length} reads", nameof(local));
        foreach (int b in blocks) _pool.Retain(b);
        _blocks.AddRange(blocks);
        for (int g = 0; g < local.Length; g++)
            for (int i = 0; i < local[g].Count; i++)
            {
                int b = i < first ? PagedWindow.Freed : local[g][i];
                if (b != PagedWindow.Freed) _pool.Retain(b);
                _local[g].Add(b);
            }
        Length = length;
    }

    /// <summary>How many fresh blocks <see cref="Reserve"/> would take to reach <paramref name="length"/>.</summary>
    public int BlocksNeeded(int length)
    {
        if (_scored != null) return length <= Length ? 0 : ScoredBlocksNeeded(length - Length);
        if (_exact == null) return TablesNeeded(length);
        int needed = Math.Max(0, BlocksFor(length) - _blocks.Count);
        if (length > Length)
            for (int i = FirstWritten(); i < Math.Min(_blocks.Count, BlocksFor(length)); i++)
                if (MustCopy(_blocks[i])) needed++;
        return needed;
    }

    /// <summary>
    /// Why a KIVI sequence shares no prefix-cache blocks: the newest 64 to 95 key rows are read exact, and a prefix
    /// another sequence computed holds them only as codes.
    /// </summary>
    public const string ExactRowsReason =
        "its newest key rows are read exact, and a prefix computed by another sequence holds them only quantized";

    /// <summary>
    /// The first block a step may write into under a type whose rows do not stand alone: its rows, and the groups it
    /// quantizes, which lie at most a group and the exact rows behind the sequence's end. A fork shares those blocks
    /// until then, so they are copied first.
    /// </summary>
    private int FirstWritten() => Math.Max(0, Length - KvKivi.GroupRows - KiviPerChannel.ExactRows) / _pool.BlockSize;

    private bool MustCopy(int block) => _pool.IsShared(block);

    /// <summary>Makes room for positions [0, length): allocates blocks, and copies a shared partial last block.</summary>
    public void Reserve(int length)
    {
        ObjectDisposedException.ThrowIf(_released, this);
        if (length > MaxLength) throw new InvalidOperationException($"sequence of {length} tokens exceeds its context length {MaxLength}");
        if (length <= Length) return;
        if (_scored != null)
        {
            ReserveScored(length);
            return;
        }
        // Blocks no query from Length on reads go back first: behind a window policy's window, or a local layer's.
        _window?.ReleaseOutside(_blocks, Length);
        if (_local != null)
            foreach (var table in _local) PagedWindow.Release(_pool, table, 0, _pool.FirstLocalBlock(Length));
        int needed = BlocksNeeded(length);
        if (needed > _pool.AvailableBlocks) throw new OutOfKvBlocksException(needed, _pool.BlockCount);
        if (_exact != null)
            for (int i = FirstWritten(); i < _blocks.Count; i++)
                if (MustCopy(_blocks[i])) CopyOnWrite(_blocks, i);
        int partial = Length / _pool.BlockSize;
        for (int g = 0; g < TableCount; g++)
        {
            var table = Table(g);
            if (_exact == null && Length % _pool.BlockSize != 0 && MustCopy(table[partial])) CopyOnWrite(table, partial);
            while (table.Count < BlocksFor(length)) table.Add(_pool.Allocate());
        }
        if (_exact == null) return;
        for (int i = 0; i < _blocks.Count; i++) _pool.BlockPositions![_blocks[i]] = i * _pool.BlockSize;
        _pool.Rows.Prepare(_exact, CollectionsMarshal.AsSpan(_blocks), Length, length);
    }

    /// <summary>Replaces entry <paramref name="i"/> of <paramref name="table"/> with a copy of its block that only this sequence holds.</summary>
    private void CopyOnWrite(List<int> table, int i)
    {
        int copy = _pool.Allocate();
        _pool.CopyBlock(table[i], copy);
        _pool.Release(table[i]);
        table[i] = copy;
    }

    /// <summary>Fresh blocks every table (one per layer group) needs to reach <paramref name="length"/>: new ones, and a copy of a shared partial last block.</summary>
    private int TablesNeeded(int length)
    {
        int needed = 0;
        for (int g = 0; g < TableCount; g++)
        {
            var table = Table(g);
            needed += Math.Max(0, BlocksFor(length) - table.Count);
            if (length > Length && Length % _pool.BlockSize != 0 && MustCopy(table[Length / _pool.BlockSize])) needed++;
        }
        return needed;
    }


    /// <summary>Blocks to add so that every head has a free slot for each of <paramref name="tokens"/> new positions.</summary>
    private int ScoredBlocksNeeded(int tokens)
    {
        int more = _scored!.RowsNeeded(tokens);
        return more == 0 ? 0 : BlocksFor(_blocks.Count * _pool.BlockSize + more) - _blocks.Count;
    }

    /// <summary>Adds the blocks a step of positions [Length, length) needs for its slots, then takes those slots in every head.</summary>
    private void ReserveScored(int length)
    {
        int needed = ScoredBlocksNeeded(length - Length);
        if (needed > _pool.AvailableBlocks) throw new OutOfKvBlocksException(needed, _pool.BlockCount);
        int from = _blocks.Count * _pool.BlockSize;
        for (int i = 0; i < needed; i++) _blocks.Add(_pool.Allocate());
        if (needed > 0) _scored!.AddSlots(from, _blocks.Count * _pool.BlockSize);
        _scored!.Reserve(Length, length);
    }

    public void Write(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (_scored != null)
        {
            // Each head puts its new position in a slot of its own (one its evictions freed).
            var blocks = CollectionsMarshal.AsSpan(_blocks);
            for (int h = 0, hd = _pool.Config.HeadDim; h < _pool.Config.KvHeadCount; h++)
                _pool.Rows.WriteSlot(blocks, layer, h, _scored.Of(layer, h).SlotOf(position), keys.Slice(h * hd, hd), values.Slice(h * hd, hd));
            return;
        }
        _pool.Rows.Write(TableOf(layer), layer, position, keys, values, _exact);
        if (position < Policy.Sinks) _window?.Sinks?.Capture(layer, position, keys);
    }

    public void Prefetch(int layer, int kvHead, int end)
    {
        // A local layer's first rows may be freed: its reads start at its window.
        if (_window == null && _scored == null && (_local == null || _pool.LayerGroups.GroupOf(layer) == 0))
            _pool.Rows.Prefetch(CollectionsMarshal.AsSpan(_blocks), layer, kvHead, end);
    }

    public void Attend(int layer, int kvHead, scoped in QueryBlock block, float scale, Span<float> scratch)
    {
        if (_window != null) _window.Attend(layer, kvHead, block, scale, scratch);
        else if (_scored != null) _pool.Rows.AttendScored(CollectionsMarshal.AsSpan(_blocks), layer, kvHead, block, scale, scratch, _scored);
        else _pool.Rows.Attend(TableOf(layer), layer, kvHead, block, scale, scratch, _exact);
    }

    public bool TryAttendHeads(int layer, int firstHead, int heads, ReadOnlySpan<float> queries, Span<float> output, int position, float scale,
        Span<float> scratch, int scratchStride, ReadOnlySpan<float> sinkLogits = default) =>
        _window == null && _scored == null
        && (_local == null || _pool.LayerGroups.GroupOf(layer) == 0)
        && _pool.Rows.TryAttendHeads(CollectionsMarshal.AsSpan(_blocks), layer, firstHead, heads, queries, output, position, scale, scratch, scratchStride, _exact, sinkLogits);

    public bool AttendsWholeChunks => _scored != null;

    public void Commit(int length)
    {
        int most = _scored != null ? MaxLength : _blocks.Count * _pool.BlockSize;
        if (length < Length || length > most)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"must be within [{Length}, {most}]");
        Length = length;
    }

    /// <summary>A new sequence sharing every block of this one (parallel sampling): nothing is copied until written.</summary>
    public PagedKvSequence Fork()
    {
        ObjectDisposedException.ThrowIf(_released, this);
        // Sink keys are rotated in place, in blocks a fork would share.
        if (_window?.Sinks != null) throw new InvalidOperationException($"a sequence with cache policy '{Policy}' cannot be forked: its sink keys move in shared blocks");
        // Its heads would evict in their own ways from then on and reuse the freed slots, in blocks the fork shares.
        if (_scored != null) throw new InvalidOperationException($"a sequence with cache policy '{Policy}' cannot be forked: each head reuses its evicted slots in place");
        var child = _window == null ? new PagedKvSequence(_pool, MaxLength) : new PagedKvSequence(_pool, MaxLength, Policy);
        // Its own pending rows, as they are: the blocks it shares hold only the groups quantized so far, and the next
        // step of either copies the blocks it writes into (see FirstWritten).
        if (_exact != null) child._exact = _exact.Fork();
        for (int g = 0; g < _pool.LayerGroups.Count; g++)
            foreach (int b in Table(g))
            {
                if (b != PagedWindow.Freed) _pool.Retain(b);
                child.Table(g).Add(b);
            }
        child.Length = Length;
        return child;
    }

    /// <summary>Rewinds to <paramref name="length"/> positions, releasing the blocks past it.</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), length, $"the sequence holds {Length} positions");
        if (_window != null && _window.FirstNeededBlock(length) is int first && first < _blocks.Count && first >= _window.SinkBlocks
            && _blocks[first] == PagedWindow.Freed)
            throw new InvalidOperationException($"cannot truncate a sequence of {Length} tokens with cache policy '{Policy}' to {length}: its window's blocks were freed");
        if (_local != null && _pool.FirstLocalBlock(length) is int needed && needed < _local[0].Count && _local[0][needed] == PagedWindow.Freed)
            throw new InvalidOperationException(
                $"cannot truncate a sequence of {Length} tokens to {length}: its local layers no longer hold the window of {_pool.LayerGroups.LocalWindow} positions before it");
        if (_scored != null)
        {
            // Slots are not positions: the blocks stay, and the heads free the slots of the positions dropped.
            _scored.Truncate(length, Length);
            Length = length;
            return;
        }
        if (_exact != null) _pool.Rows.Truncate(_exact, length, Length);
        int keep = BlocksFor(length);
        for (int g = 0; g < TableCount; g++)
        {
            var table = Table(g);
            for (int i = table.Count - 1; i >= keep; i--)
            {
                if (table[i] != PagedWindow.Freed) _pool.Release(table[i]);
                table.RemoveAt(i);
            }
        }
        Length = length;
    }

    /// <summary>Gives every block back to the pool (published ones stay cached for later prefix hits).</summary>
    public void Release()
    {
        if (_released) return;
        // Tail first: cached blocks are evicted in the order they were let go, and a prefix that loses its head
        // loses every block after it (a lookup walks the chain from the start), while losing the tail costs only it.
        for (int g = 0; g < TableCount; g++)
        {
            var table = Table(g);
            for (int i = table.Count - 1; i >= 0; i--)
                if (table[i] != PagedWindow.Freed) _pool.Release(table[i]);
            table.Clear();
        }
        Length = 0;
        _released = true;
    }
}
